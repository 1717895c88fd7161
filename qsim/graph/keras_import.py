"""Keras model files → raw `Graph` (before passes), with h5py/zipfile/json only.

Accepted inputs (detected from content, not extension):

* legacy HDF5 full model (``model.save("m.h5")`` in Keras 2 or 3): attribute
  ``model_config`` + group ``model_weights``;
* a weights-only file (legacy HDF5 ``save_weights("w.h5")`` or Keras 3 ``w.weights.h5``)
  together with ``arch``: a JSON file/string from ``model.to_json()`` or a dict;
* Keras 3 ``.keras`` zip archive: ``config.json`` + ``model.weights.h5``.

Every failure (not a file, not HDF5/zip, truncated, missing weights, unsupported layer)
is a `ModelError` naming the file and, where it applies, the layer.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from qsim.errors import ModelError, QsimError
from qsim.graph.ir import Graph, Node
from qsim.graph.keras_config import check_structure, flatten, layer_tree
from qsim.graph.keras_layers import convert
from qsim.graph.keras_weights import Weights, read_weights
from qsim.graph.shapes import node_shape


def _h5py():
    import h5py

    return h5py


def _load_arch(arch: Any, source: str, is_text: bool = False) -> dict:
    """`arch` as a dict: a dict, a JSON string, or (unless `is_text`) a path to a JSON file."""
    if isinstance(arch, dict):
        return arch
    text = None
    if not is_text and isinstance(arch, (str, os.PathLike)) and not str(arch).lstrip().startswith("{"):
        try:
            text = Path(arch).read_text()
        except OSError as exc:
            raise ModelError(f"architecture file {arch}: {exc}") from exc
        source = str(arch)
    else:
        text = str(arch)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"architecture {source}: not valid JSON ({exc})") from exc


def _open_h5(h5py, data: Any, source: str):
    try:
        return h5py.File(data, "r")
    except (OSError, ValueError) as exc:
        raise ModelError(f"{source}: not a readable HDF5 file (truncated or corrupt?): {exc}") from exc


def read_keras(path: str | os.PathLike, arch: Any = None) -> tuple[dict, Weights]:
    """``(model_config, weights)`` from any supported file; see the module docstring."""
    source = str(path)
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{source}: no such model file")
    with open(p, "rb") as fh:
        magic = fh.read(8)
    if magic[:4] == b"PK\x03\x04":
        return _read_keras_zip(p, source, arch)
    if magic != b"\x89HDF\r\n\x1a\n":
        raise ModelError(
            f"{source}: neither HDF5 (.h5) nor a Keras zip archive (.keras); first bytes {magic!r}"
        )
    try:
        return _read_h5(p, source, arch)
    except QsimError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
        # h5py on a damaged file fails in many places (B-tree signatures, heap offsets, attributes)
        raise ModelError(f"{source}: cannot read (truncated or corrupt HDF5?): {type(exc).__name__}: {exc}") from None


def _read_h5(p: Path, source: str, arch: Any) -> tuple[dict, Weights]:
    h5py = _h5py()
    with _open_h5(h5py, p, source) as f:
        config = None
        if arch is not None:
            config = _load_arch(arch, source)
        elif "model_config" in f.attrs:
            raw = f.attrs["model_config"]
            config = _load_arch(raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw), source,
                                is_text=True)
        if config is None:
            raise ModelError(
                f"{source}: a weights-only file (no model_config); pass its architecture as "
                "arch= (a model.to_json() file or dict)"
            )
        check_structure(config, source)
        version = f.attrs.get("keras_version")
        if "keras_version" not in config and version is not None:  # hard_sigmoid changed in Keras 3
            config = {**config, "keras_version": version.decode() if isinstance(version, bytes) else str(version)}
        group = f["model_weights"] if "model_weights" in f else f
        try:
            weights = read_weights(group, source, layer_tree(config))
        except (OSError, RuntimeError) as exc:
            raise ModelError(f"{source}: cannot read weights (truncated or corrupt?): {exc}") from exc
    return config, weights


def _read_keras_zip(p: Path, source: str, arch: Any) -> tuple[dict, Weights]:
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
            if "model.weights.h5" not in names:
                raise ModelError(f"{source}: .keras archive without model.weights.h5 (found {names})")
            config_text = zf.read("config.json").decode(errors="replace") if "config.json" in names else None
            weights_bytes = zf.read("model.weights.h5")
    except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as exc:
        raise ModelError(f"{source}: corrupt .keras archive (truncated?): {exc}") from exc
    if arch is not None:
        config = _load_arch(arch, source)
    elif config_text is not None:
        config = _load_arch(config_text, f"{source}:config.json", is_text=True)
    else:
        raise ModelError(f"{source}: .keras archive without config.json")
    check_structure(config, source if arch is not None else f"{source}:config.json")
    h5py = _h5py()
    try:
        with _open_h5(h5py, io.BytesIO(weights_bytes), f"{source}:model.weights.h5") as f:
            weights = read_weights(f, source, layer_tree(config))
    except QsimError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ModelError(f"{source}:model.weights.h5: cannot read (truncated or corrupt HDF5?): "
                         f"{type(exc).__name__}: {exc}") from None
    return config, weights


def resolve_axes(node: Node, in_shapes: list[tuple]) -> None:
    """What a converter cannot know without the input's shape (``node`` is changed in place).

    A positive Keras axis counts the batch axis: a softmax's becomes negative, a
    BatchNormalization's or Normalization's must be the last; a scalar rescale is
    broadcast to the channels.
    """
    rank = len(in_shapes[0]) + 1 if in_shapes else 0
    if node.op == "softmax" and node.attrs["axis"] > 0:
        node.attrs["axis"] -= rank
    axis = node.attrs.pop("keras_axis", None)
    if axis is not None and axis != rank - 1:
        raise ModelError(f"layer {node.name!r} ({node.source_class}): axis={axis} of a rank-{rank} tensor; "
                         "only the last axis (channels or features)")
    channels = in_shapes[0][-1] if in_shapes else None
    if node.op == "rescale" and node.weights["scale"].size == 1 and channels not in (None, 1):
        node.weights = {k: np.repeat(v, channels) for k, v in node.weights.items()}


def import_keras(path: str | os.PathLike, arch: Any = None) -> Graph:
    """The raw graph of a Keras file: one node per layer (activations split off), no passes."""
    source = str(path)
    config, weights = read_keras(path, arch)
    flat = flatten(config, source)
    # Weight files key layers by their own name: two weighted layers of one name (an outer
    # layer and one inside a nested model) cannot be told apart, so refuse rather than guess.
    weighted = [lay.keras_name for lay in flat.layers if lay.keras_name in weights]
    clashes = sorted({n for n in weighted if weighted.count(n) > 1})
    if clashes:
        raise ModelError(f"{source}: layer name(s) {clashes} used in a nested model and outside it; "
                         "their weights are ambiguous (rename the layers)")
    nodes: list[Node] = []
    shapes: dict[str, tuple] = {}
    for layer in flat.layers:
        if layer.class_name == "InputLayer":
            shape = layer.config["batch_shape"]
            if not isinstance(shape, list) or len(shape) < 2 or not all(
                    d is None or (isinstance(d, int) and d >= 1) for d in shape[1:]):
                raise ModelError(f"{source}: input {layer.name!r} has shape {shape}; expected (N, ...) with "
                                 "at least one non-batch axis, e.g. (N, H, W, C) or (N, features)")
            node = Node(layer.name, "input", [], {"shape": tuple(shape[1:])}, {}, "InputLayer")
            nodes.append(node)
            shapes[node.name] = node.attrs["shape"]
            continue
        try:
            for node in convert(layer, weights.get(layer.keras_name, {})):
                resolve_axes(node, [shapes[i] for i in node.inputs])
                shapes[node.name] = node_shape(node, [shapes[i] for i in node.inputs])
                nodes.append(node)
        except ModelError as exc:
            raise ModelError(f"{source}: {exc}") from None
    notes = []
    unused = sorted(set(weights) - {layer.keras_name for layer in flat.layers})
    if unused:  # e.g. full-backbone weights loaded into a model cut at block_13
        notes.append(f"import: ignored weights of {len(unused)} layer(s) not in the architecture: "
                     + ", ".join(unused[:5]) + (" ..." if len(unused) > 5 else ""))
    for node in nodes:
        for key, arr in node.weights.items():
            node.weights[key] = np.ascontiguousarray(arr, dtype=np.float32)
    return Graph(nodes, flat.outputs, name=flat.name, source=source, notes=notes)
