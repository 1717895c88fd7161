"""``qsim quantize [SOURCE] --format Q6.9``: what a Q format does to every weight tensor.

SOURCE is a Keras HDF5 file (a full model: the datasets under ``model_weights/``; a
weights-only legacy file: the root), a Keras 3 ``.keras`` archive (its
``model.weights.h5``), a ``.npy`` array or a ``.npz`` archive. Without SOURCE, the
MobileNetV2 ImageNet weights of the data folder are used
(``weights/mobilenet_v2_1.0_224_no_top_tfslim.h5``).

Tensors come in the model's layer order when the file records it (Keras ``layer_names``
/ ``weight_names`` attributes), else in HDF5 name order; non-float datasets are skipped
(and listed); ``--match REGEX`` keeps only the tensors whose name matches. For each tensor and each format it prints shape, float range, integer bits
needed, max abs / RMS error, SQNR, overflow events and headroom bits (definitions:
`qsim.fixed.report`), as a Markdown table with a totals line; with several formats
(``--formats Q9,Q8,Q7,Q6``) a summary table across formats follows.

Rounding and overflow are stated on the command line (defaults shown by ``--help``;
the library itself has no defaults).

JSON (``--json OUT``), schema version 1::

    {
      "qsim_quantize": 1,
      "source": "path.h5",
      "rounding": "half_even", "overflow": "saturate", "match": REGEX | null,
      "skipped": [{"name": .., "dtype": ..}],
      "formats": [{
        "format": "Q6.9", "word_bits": 16, "frac_bits": 9, "lsb": .., "range": [lo, hi],
        "tensors": [TensorReport.to_dict(), ...],   # name, shape, size, min, max,
                                                     # int_bits_needed, max_abs_error,
                                                     # rms_error, sqnr_db, overflow{...}
        "totals": Totals.to_dict()
      }]
    }

Infinities (SQNR of an exact cast, headroom of an all-zero tensor) are written as the
strings ``"inf"`` / ``"-inf"`` so the file is strict JSON.
"""
from __future__ import annotations

import argparse
import io
import math
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from qsim.cli.values import overflow_name, rounding_name
from qsim.errors import FormatError, ModelError, QsimError
from qsim.fixed.format import QFormat
from qsim.fixed.modes import Overflow, Rounding
from qsim.fixed.report import TensorReport, Totals, report_tensors

SCHEMA_VERSION = 1
DEFAULT_WEIGHTS = ("weights", "mobilenet_v2_1.0_224_no_top_tfslim.h5")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="Keras .h5 / .keras, .npy or .npz (default: the MobileNetV2 ImageNet "
                        "weights of the data folder)")
    p.add_argument("--format", default="Q6.9", metavar="FMT",
                   help="number format: Q6.9, UQ0.8, q9 (paper: 16-bit word, 9 fraction bits), "
                        "ap_fixed<16,7> (default: %(default)s)")
    p.add_argument("--formats", metavar="FMT,FMT,...",
                   help="several formats (e.g. Q9,Q8,Q7,Q6): one table each plus a summary; "
                        "overrides --format")
    p.add_argument("--rounding", default="half_even", type=rounding_name, metavar="MODE",
                   help="rounding of the real value to a code (default: %(default)s)")
    p.add_argument("--overflow", default="saturate", type=overflow_name, metavar="MODE",
                   help="out-of-range codes (default: %(default)s)")
    p.add_argument("--match", metavar="REGEX",
                   help="only tensors whose name matches (re.search), e.g. 'kernel' for conv "
                        "weights without the raw BatchNorm statistics")
    p.add_argument("--json", metavar="OUT", help="also write the full report as JSON")


# --- reading tensors --------------------------------------------------------------------
def _h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a dependency
        raise ModelError("reading .h5 files needs h5py (pip install h5py)") from exc
    return h5py


def _names(attr) -> list[str]:
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in attr]


def _h5_tensors(root, label: str, skipped: list) -> Iterator[tuple[str, np.ndarray]]:
    """Float datasets of an HDF5 group, in Keras layer order when recorded."""
    h5py = _h5py()
    if "model_weights" in root:  # a full Keras model (model.save): weights live here
        root = root["model_weights"]
    order: list[str] = []
    if "layer_names" in root.attrs:  # legacy Keras layout: layer -> weight_names
        for layer in _names(root.attrs["layer_names"]):
            group = root.get(layer)
            if group is None:
                raise ModelError(f"{label}: layer {layer!r} is listed in layer_names but has no group")
            for w in _names(group.attrs.get("weight_names", [])):
                order.append(f"{layer}/{w}")
    if not order:  # Keras 3 .weights.h5 or any other HDF5: every dataset, in name order
        root.visititems(lambda name, obj: order.append(name) if isinstance(obj, h5py.Dataset) else None)
    for name in order:
        ds = root.get(name)
        if not isinstance(ds, h5py.Dataset):
            raise ModelError(f"{label}: weight {name!r} is listed but missing")
        if ds.dtype.kind != "f":
            skipped.append({"name": _short(name), "dtype": str(ds.dtype)})
            continue
        try:
            data = ds[()]
        except Exception as exc:  # truncated / corrupt chunk
            raise ModelError(f"{label}: cannot read dataset {name!r}: {exc}") from None
        yield _short(name), np.asarray(data)


def _short(name: str) -> str:
    """``Conv1/Conv1/kernel:0`` -> ``Conv1/kernel:0`` (legacy Keras repeats the layer name)."""
    parts = name.split("/")
    if len(parts) >= 3 and parts[0] == parts[1]:
        parts = parts[1:]
    return "/".join(parts)


def read_tensors(path: str | Path, skipped: list | None = None) -> list[tuple[str, np.ndarray]]:
    """``(name, array)`` of every float tensor in a .h5 / .keras / .npy / .npz file.

    Non-float datasets are appended to `skipped` as ``{"name", "dtype"}``. Raises
    `ModelError` naming the file when it is missing, unreadable or holds no tensor.
    """
    path = Path(path)
    skipped = [] if skipped is None else skipped
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            from qsim.cli.files import read_npy

            arr = read_npy(path, "SOURCE")
            if arr.dtype.kind not in "fiu":
                raise ModelError(f"{path}: a .npy of dtype {arr.dtype} is not a real tensor")
            tensors = [(path.stem, arr)]
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                tensors = []
                for k in z.files:
                    if z[k].dtype.kind in "fiu":
                        tensors.append((k, z[k]))
                    else:
                        skipped.append({"name": k, "dtype": str(z[k].dtype)})
        elif suffix == ".keras":
            with zipfile.ZipFile(path) as zf:
                if "model.weights.h5" not in zf.namelist():
                    raise ModelError(f"{path}: a .keras archive without model.weights.h5")
                buf = io.BytesIO(zf.read("model.weights.h5"))
            with _h5py().File(buf, "r") as f:
                tensors = list(_h5_tensors(f, str(path), skipped))
        else:
            with _h5py().File(path, "r") as f:
                tensors = list(_h5_tensors(f, str(path), skipped))
    except QsimError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelError(f"{path}: cannot read as {suffix or 'HDF5'} ({type(exc).__name__}: {exc})") from None
    if not tensors:
        raise ModelError(f"{path}: no float tensors found")
    return tensors


# --- rendering --------------------------------------------------------------------------
def _g(v: float, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}g}"


def render_table(fmt: QFormat, reports: list[TensorReport], totals: Totals) -> str:
    """Markdown table of one format, with a totals line."""
    lines = [
        f"### {fmt} ({fmt.word_bits}-bit word, lsb {fmt.lsb:g}, range [{fmt.min_value:g}, {fmt.max_value:g}])",
        "",
        "| tensor | shape | min | max | int bits | max abs err | RMS err | SQNR dB | overflow | % | headroom bits |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in reports:
        c = r.overflow
        lines.append(
            f"| {r.name} | {'x'.join(map(str, r.shape)) or 'scalar'} | {_g(r.min)} | {_g(r.max)} | "
            f"{_g(r.int_bits_needed)} | {_g(r.max_abs_error, 3)} | {_g(r.rms_error, 3)} | "
            f"{_g(r.sqnr_db, 4)} | {c.events} | {_g(100 * c.rate, 3)} | {_g(c.headroom_bits, 3)} |"
        )
    t = totals
    lines += ["", (
        f"**total** {t.tensors} tensors, {t.size} values: max abs err {_g(t.max_abs_error, 3)}, "
        f"RMS err {_g(t.rms_error, 3)}, SQNR {_g(t.sqnr_db, 4)} dB, overflow {t.overflow.events} "
        f"({_g(100 * t.overflow.rate, 3)} %) in {t.tensors_overflowing} tensors, "
        f"headroom {_g(t.overflow.headroom_bits, 3)} bits"
    )]
    return "\n".join(lines)


def render_summary(results: list[tuple[QFormat, Totals]]) -> str:
    """One row per format."""
    lines = [
        "| format | max abs err | RMS err | SQNR dB | overflow | % | tensors overflowing | headroom bits |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for fmt, t in results:
        lines.append(
            f"| {fmt} | {_g(t.max_abs_error, 3)} | {_g(t.rms_error, 3)} | {_g(t.sqnr_db, 4)} | "
            f"{t.overflow.events} | {_g(100 * t.overflow.rate, 3)} | {t.tensors_overflowing} | "
            f"{_g(t.overflow.headroom_bits, 3)} |"
        )
    return "\n".join(lines)


# --- the verb ---------------------------------------------------------------------------
def _formats(args) -> list[QFormat]:
    spec = args.formats if args.formats else args.format
    names = [s for s in (part.strip() for part in re.split(r",(?![^<]*>)", spec)) if s]  # ap_fixed<W,I> keeps its comma
    if not names:
        raise FormatError(f"no number format in {spec!r}")
    return [QFormat.parse(n) for n in names]


def run(args: argparse.Namespace) -> int:
    from qsim.cli.files import check_outputs, write_json_file

    check_outputs(args, files=("--json",))
    formats = _formats(args)
    rounding, overflow = Rounding.parse(args.rounding), Overflow.parse(args.overflow)
    if args.source:
        source = Path(args.source)
    else:
        from qsim.datasets import data_path

        source = data_path(*DEFAULT_WEIGHTS)
    skipped: list = []
    tensors = read_tensors(source, skipped)
    if args.match:
        try:
            pattern = re.compile(args.match)
        except re.error as exc:
            raise QsimError(f"--match {args.match!r}: not a regular expression ({exc})") from None
        tensors = [(n, a) for n, a in tensors if pattern.search(n)]
        if not tensors:
            raise QsimError(f"{source}: no tensor name matches {args.match!r}")
    results = []
    for fmt in formats:
        try:
            reports, totals = report_tensors(tensors, fmt, rounding=rounding, overflow=overflow)
        except QsimError as exc:
            raise type(exc)(f"{source}: {exc}") from exc
        results.append((fmt, reports, totals))
    print(f"# qsim quantize {source}\n\nrounding {rounding.value}, overflow {overflow.value}; "
          f"{len(tensors)} tensors" + (f", {len(skipped)} non-float datasets skipped" if skipped else ""))
    for fmt, reports, totals in results:
        print()
        print(render_table(fmt, reports, totals))
    if len(results) > 1:
        print("\n### summary\n")
        print(render_summary([(f, t) for f, _, t in results]))
    if args.json:
        doc = {
            "qsim_quantize": SCHEMA_VERSION, "source": str(source),
            "rounding": rounding.value, "overflow": overflow.value, "match": args.match,
            "skipped": skipped,
            "formats": [{
                "format": str(fmt), "word_bits": fmt.word_bits, "frac_bits": fmt.frac_bits,
                "lsb": fmt.lsb, "range": [fmt.min_value, fmt.max_value],
                "tensors": [r.to_dict() for r in reports], "totals": totals.to_dict(),
            } for fmt, reports, totals in results],
        }
        out = write_json_file(doc, args.json)
        print(f"\nwrote {out}")
    return 0
