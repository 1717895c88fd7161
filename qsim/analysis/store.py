"""The result store shared by `sweep` and `eval`: entries keyed by content, never trusted blindly.

An entry is one task's result (a picture's detections, a batch's outputs): named arrays and
one JSON document, written as ``<root>/<namespace>/<format key>/<item key>.npz``. Every key
is a content hash (model file or graph, format and options, picture bytes or batch), so a
rerun, a larger ``--limit`` or another user's run on the same files reuses what exists.

* Writes are atomic (a temporary file, then ``os.replace``): a killed run leaves whole
  entries or none.
* Each entry carries the sha256 of its content; `ResultStore.load` returns None (recompute)
  for an unreadable, checksum-less or edited entry, and says so once per process on stderr.

``cache_root``: ``cache_dir`` if given, else ``$QSIM_CACHE``, else ``~/.cache/qsim``.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

_WARNED: set[str] = set()  # "checksum": the one stderr line per process about untrusted entries


def cache_root(cache_dir: Any = None) -> Path:
    """``cache_dir``, else ``$QSIM_CACHE``, else ``~/.cache/qsim``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("QSIM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "qsim"


def file_sha256(path: Any) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_hash(model: Any) -> str:
    """Short sha256 of a model file, or of a graph's node names, ops, attributes and weights."""
    if isinstance(model, (str, Path)):
        return file_sha256(model)[:16]
    h = hashlib.sha256()
    for node in model:
        h.update(f"{node.name}|{node.op}|{sorted(node.attrs.items())!r}".encode())
        for key in sorted(node.weights):
            h.update(key.encode())
            h.update(np.ascontiguousarray(node.weights[key]).tobytes())
    return h.hexdigest()[:16]


def content_key(label: str, doc: Any) -> str:
    """``<label>-<12 hex of sha256(JSON of doc)>``: readable and content-addressed."""
    text = json.dumps(doc, sort_keys=True, default=str)
    return f"{label.replace('/', '_')[:24]}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def entry_digest(arrays: dict[str, np.ndarray], meta_json: str) -> str:
    """sha256 of an entry's content: each array's name, dtype, shape and bytes, then the JSON."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape!r}".encode())
        h.update(a.tobytes())
    h.update(meta_json.encode())
    return h.hexdigest()


def save_entry(path: Path, arrays: dict[str, np.ndarray], meta: Any) -> None:
    """Write one entry atomically, with its checksum (``arrays``: numeric arrays only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    meta_json = json.dumps(meta)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **{f"a_{k}": v for k, v in arrays.items()}, meta=np.array(meta_json),
             sha256=np.array(entry_digest(arrays, meta_json)))
    os.replace(tmp, path)  # atomic: a killed run never leaves half a file


def load_entry(path: Path) -> tuple[dict[str, np.ndarray], Any] | None:
    """The entry's (arrays, meta), or None to recompute it: missing, unreadable, written
    without a checksum, or edited since (its sha256 no longer matches; said once on stderr)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k[2:]: z[k] for k in z.files if k.startswith("a_")}
            meta_json = str(z["meta"])
            stored = str(z["sha256"]) if "sha256" in z.files else None
        meta = json.loads(meta_json)
    except Exception:  # a corrupt entry is recomputed, never trusted
        return None
    if stored != entry_digest(arrays, meta_json):
        if stored is not None and "checksum" not in _WARNED:
            _WARNED.add("checksum")
            print(f"qsim: cache entry {path} does not match its checksum (edited or corrupt); "
                  "recomputing it (other such entries are recomputed without a message)", file=sys.stderr)
        return None
    return arrays, meta


class ResultStore:
    """Entries of one job kind and model: ``<root>/<namespace>/<model key>/<format key>/<item key>.npz``.

    ``ResultStore(None)`` stores nothing (``--no-cache``): `path` is None, `load` misses.
    """

    def __init__(self, root: Path | None, namespace: str = "", model_key: str = "") -> None:
        self.base = None if root is None else Path(root) / namespace / model_key

    def path(self, format_key: str, item_key: str) -> Path | None:
        return None if self.base is None else self.base / format_key / f"{item_key}.npz"

    def load(self, path: Path | None):
        return None if path is None else load_entry(path)

    def save(self, path: Path | None, arrays: dict[str, np.ndarray], meta: Any) -> None:
        if path is not None:
            save_entry(path, arrays, meta)
