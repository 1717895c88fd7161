"""Golden test vectors: per MAC layer, what a device implementation must reproduce.

``write_vectors(graph, plan, x, out_dir, layers=REGEX, format_out="npz"|"bin"|"c")`` runs
the fixed executor once and writes, for every selected MAC layer (conv2d, depthwise,
unfolded batch_norm):

* ``input``   the layer's input codes (NHWC), of the producer's format;
* ``weights`` / ``bias``  the parameter codes as stored (HWIO; depthwise (KH,KW,C,mult));
* ``acc``     the exact accumulator (int64) *before* the accumulator model: bias aligned by
  ``bias_shift`` plus every product, computed here with plain int64 NumPy from the input and
  weight codes (exact: the bound ``fan_in * max|x| * max|w| + |bias|`` is checked < 2**62);
* ``output``  the layer's output codes from the executor's trace (before a fused ReLU);

and ``manifest.json``: model, plan, input shape, layout (NHWC activations, HWIO weights), per
layer the shapes, dtypes, formats, shifts, accumulator width and saturation, the rounding
and overflow mode of each site (``weights``, ``bias``, ``acc``, ``requant``), the overflow
events the executor counted, every file's SHA-256 and one ``content_hash`` over them.
A device test computes ``output`` from ``acc`` with the manifest's modes: narrow to
``acc_bits`` (``acc`` site), then round ``out_shift`` bits and narrow to the output format
(``requant`` site) - `qsim.fixed.accumulate` then `qsim.fixed.rescale`.

File formats: ``npz`` one ``<layer>.npz`` per layer (int64 arrays); ``bin`` raw little-endian
``<layer>.<field>.bin`` (codes in the format's C word, ``acc`` int64; dtypes in the
manifest); ``c`` one ``<layer>_vectors.h`` with ``static const`` arrays and ``#define``s.
Files are byte-identical when regenerated (no timestamps), so ``content_hash`` identifies a
vector set.

This module holds the writer every backend shares (`Field`, `write_layer`, `finish_manifest`,
one `read_vectors`); the TFLite int8 vectors are `qsim.vectors.tflite`, the kmodel (KPU)
vectors `qsim.vectors.k210`, both in these formats with the same manifest conventions.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import numpy as np

from qsim.errors import InputError, PlanError
from qsim.export import c_array, c_name, c_type, layer_table, quantized_parameters
from qsim.fixed.format import QFormat
from qsim.graph.ir import resolve_pads
from qsim.plan import Mode, Plan

SCHEMA_VERSION = 1
FORMATS_OUT = ("npz", "bin", "c")
INT64_SAFE = 2**62


def exact_accumulator(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, bias_shift: int, *,
                      strides, pads, dilation, depthwise: bool) -> np.ndarray:
    """bias * 2**bias_shift + sum of products, exact in int64 (NHWC x HWIO, zero padding)."""
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    kh, kw, c, k4 = w.shape
    fan_in = kh * kw * (1 if depthwise else c)
    bmax = 0 if bias is None or bias.size == 0 else int(np.abs(bias).max()) << bias_shift
    bound = fan_in * int(np.abs(x).max(initial=0)) * int(np.abs(w).max(initial=0)) + bmax
    if bound >= INT64_SAFE:
        raise PlanError(f"accumulator bound {bound} reaches 2**62: int64 vectors would not be exact")
    t, b, l, r = pads
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    (sh, sw), (dh, dw) = strides, dilation
    n, hp, wp, _ = xp.shape
    ho = (hp - ((kh - 1) * dh + 1)) // sh + 1
    wo = (wp - ((kw - 1) * dw + 1)) // sw + 1
    cout = c * k4 if depthwise else k4
    acc = np.zeros((n, ho, wo, cout), dtype=np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, ky * dh: ky * dh + (ho - 1) * sh + 1: sh, kx * dw: kx * dw + (wo - 1) * sw + 1: sw, :]
            if depthwise:  # output channel c*mult + m reads input channel c
                acc += (patch[..., :, None] * w[ky, kx][None, None, None]).reshape(n, ho, wo, cout)
            else:
                acc += np.tensordot(patch, w[ky, kx], axes=([3], [0]))
    if bias is not None:
        acc += np.asarray(bias, dtype=np.int64) * (1 << bias_shift)
    return acc


# --- the shared writer: one layer's fields -> files, and the manifest (every backend) --------
@dataclass(frozen=True)
class Field:
    """One array of a layer's vector set: values, the C element type it is written as
    (``bin`` and ``c``), the C comment saying what it holds, extra manifest keys."""

    array: np.ndarray
    ctype: str
    note: str
    meta: dict = dataclass_field(default_factory=dict)


LE_DTYPES = {"int8_t": "<i1", "int16_t": "<i2", "int32_t": "<i4", "int64_t": "<i8",
             "uint8_t": "<u1", "uint16_t": "<u2", "uint32_t": "<u4", "uint64_t": "<u8"}


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz with fixed timestamps (np.savez stamps the time: not reproducible)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            a = io.BytesIO()
            np.lib.format.write_array(a, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), a.getvalue())
    return buf.getvalue()


def write_layer(out: Path, stem: str, title: str, fields: dict[str, Field], defines: list[tuple[str, int]],
                format_out: str, files: dict[str, str], c_extra: str = "") -> dict[str, dict]:
    """Write one layer's fields in `format_out`; record each file's SHA-256 in `files`.

    ``npz``: ``<stem>.npz`` (arrays in their own dtype); ``bin``: ``<stem>.<field>.bin`` (raw
    little-endian in the field's C type); ``c``: ``<stem>_vectors.h`` (``static const`` arrays,
    ``#define <STEM>_<NAME> value`` per define, then `c_extra`: C text for what is no integer
    field, e.g. doubles). Returns the manifest's ``fields`` entry
    (shape, file, and key / dtype / symbol, plus each field's ``meta``).
    """
    if format_out not in FORMATS_OUT:
        raise InputError(f"vectors: --format-out {format_out!r}; expected one of {', '.join(FORMATS_OUT)}")
    entry = {k: {"shape": list(f.array.shape), **f.meta} for k, f in fields.items()}
    if format_out == "npz":
        blobs = {f"{stem}.npz": _npz_bytes({k: f.array for k, f in fields.items()})}
        for k, f in fields.items():
            entry[k].update(file=f"{stem}.npz", key=k, dtype=f.array.dtype.name)
    elif format_out == "bin":
        blobs = {}
        for k, f in fields.items():
            dt = np.dtype(LE_DTYPES[f.ctype])
            blobs[f"{stem}.{k}.bin"] = np.ascontiguousarray(f.array, dtype=dt).tobytes()
            entry[k].update(file=f"{stem}.{k}.bin", dtype=dt.str)
    else:
        L = stem.upper()
        text = [f"/* qsim vectors: {title}, generated; do not edit. */",
                f"#ifndef QSIM_{L}_VECTORS_H", f"#define QSIM_{L}_VECTORS_H", "#include <stdint.h>"]
        text += [f"#define {L}_{name} {value}" for name, value in defines] + [""]
        for k, f in fields.items():
            text.append(f"/* {k}: shape {'x'.join(map(str, f.array.shape))}, {f.note} */")
            text.append(c_array(f.ctype, f"{stem}_{k}", f.array))
            entry[k].update(file=f"{stem}_vectors.h", symbol=f"{stem}_{k}", dtype=f.ctype)
        if c_extra:
            text.append(c_extra)
        text += [f"#endif /* QSIM_{L}_VECTORS_H */", ""]
        blobs = {f"{stem}_vectors.h": "\n".join(text).encode("utf-8")}
    for fname, blob in blobs.items():
        (out / fname).write_bytes(blob)
        files[fname] = hashlib.sha256(blob).hexdigest()
    return entry


def finish_manifest(out: Path, manifest: dict[str, Any], files: dict[str, str]) -> dict[str, Any]:
    """Add ``files`` and ``content_hash`` (one SHA-256 over the sorted ``name:sha256`` lines)
    to `manifest`, write ``out/manifest.json`` and return it."""
    content = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(files.items())).encode()).hexdigest()
    manifest = {**manifest, "files": files, "content_hash": content}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def counters_json(counters: dict) -> dict[str, dict]:
    """site -> {events, elements, max_abs} of `OverflowCounter`s (JSON-able)."""
    return {site: {"events": c.events, "elements": c.elements,
                   "max_abs": int(c.max_abs) if np.isfinite(c.max_abs) else str(c.max_abs)}
            for site, c in sorted(counters.items())}


def layer_pattern(layers: str | None):
    """The compiled ``--layers`` regular expression (None: every layer)."""
    try:
        return re.compile(layers) if layers else None
    except re.error as exc:
        raise InputError(f"vectors: --layers {layers!r} is not a regular expression: {exc}") from None


def write_vectors(graph, plan: Plan, x: np.ndarray, out_dir: "str | Path", *, layers: str | None = None,
                  format_out: str = "npz", model_name: str = "") -> dict[str, Any]:
    """Write the vector set; returns the manifest (also in ``out_dir/manifest.json``)."""
    from qsim.executors import run

    if format_out not in FORMATS_OUT:
        raise InputError(f"vectors: --format-out {format_out!r}; expected one of {', '.join(FORMATS_OUT)}")
    if plan.mode is not Mode.FULL:
        raise PlanError(f"vectors need a full-integer Q-format plan, got mode {plan.mode.value!r}")
    plan.validate(graph)
    pattern = layer_pattern(layers)
    rows = [r for r in layer_table(graph, plan) if pattern is None or pattern.search(r["name"])]
    if not rows:
        raise InputError(f"vectors: no MAC layer of {graph.name!r} matches --layers {layers!r}")
    x = np.asarray(x, dtype=np.float32)
    trace = run(graph, x, executor="fixed", plan=plan)
    params = quantized_parameters(graph, plan)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    entries = []
    for row in rows:
        node = graph[row["name"]]
        kernel, bias, depthwise = params[row["name"]]
        xin = trace.codes[row["input"]]
        if node.op == "batch_norm":
            strides, pads, dilation = (1, 1), (0, 0, 0, 0), (1, 1)
        else:
            strides = tuple(node.attrs.get("strides", (1, 1)))
            dilation = tuple(node.attrs.get("dilation", (1, 1)))
            pads = resolve_pads(node.attrs.get("pads", (0, 0, 0, 0)), xin.shape[1:3], kernel.shape[:2],
                                strides, dilation)
        acc = exact_accumulator(xin, kernel, bias, row["bias_shift"], strides=strides, pads=pads,
                                dilation=dilation, depthwise=depthwise)
        fmts = {"input": QFormat.parse(row["in_format"]), "weights": QFormat.parse(row["weights_format"]),
                "bias": QFormat.parse(row["bias_format"]), "acc": None, "output": QFormat.parse(row["out_format"])}
        data = {"input": xin, "weights": kernel, "acc": acc, "output": trace.codes[row["name"]]}
        if bias is not None:
            data["bias"] = bias
        vfields = {k: Field(v, "int64_t" if fmts[k] is None else c_type(fmts[k]),
                            "exact accumulator" if fmts[k] is None else str(fmts[k]),
                            {"format": None if fmts[k] is None else str(fmts[k])})
                   for k, v in data.items()}
        defines = [("BIAS_SHIFT", row["bias_shift"]), ("OUT_SHIFT", row["out_shift"]), ("ACC_BITS", row["acc_bits"])]
        fields = write_layer(out, c_name(row["name"]), f"layer '{row['name']}'", vfields, defines, format_out, files)
        counters = trace.counters.get(row["name"], {})
        entries.append({
            "name": row["name"], "op": row["op"], "depthwise": depthwise, "input": row["input"],
            "strides": list(strides), "pads": list(pads), "dilation": list(dilation),
            "acc_bits": row["acc_bits"], "acc_frac": row["acc_frac"], "acc_saturation": row["acc_saturation"],
            "bias_shift": row["bias_shift"], "out_shift": row["out_shift"], "modes": row["modes"],
            "fields": fields,
            "overflow": counters_json(counters),
        })
    return finish_manifest(out, {
        "qsim_vectors": SCHEMA_VERSION, "backend": "fixed", "model": model_name or graph.name, "plan": plan.to_dict(),
        "input_shape": list(x.shape), "layout": {"activations": "NHWC", "weights": "HWIO"},
        "format_out": format_out, "layers": entries,
    }, files)


def read_vectors(out_dir: "str | Path") -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """(manifest, layer -> field -> int64 array) of a vector set written by `write_vectors`,
    `qsim.vectors.tflite.write_vectors` or `qsim.vectors.k210.write_vectors` (one reader)."""
    out = Path(out_dir)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    data: dict[str, dict[str, np.ndarray]] = {}
    for layer in manifest["layers"]:
        arrays = {}
        for k, f in layer["fields"].items():
            path = out / f["file"]
            if manifest["format_out"] == "npz":
                with np.load(path) as z:
                    arrays[k] = z[f["key"]].astype(np.int64)
            elif manifest["format_out"] == "bin":
                arrays[k] = np.frombuffer(path.read_bytes(), dtype=np.dtype(f["dtype"])).astype(np.int64)
            else:
                text = path.read_text(encoding="utf-8")
                m = re.search(rf"\b{re.escape(f['symbol'])}\[\d+\] = \{{(.*?)\}};", text, re.S)
                arrays[k] = np.array([int(v) for v in m.group(1).split(",") if v.strip()], dtype=np.int64)
            arrays[k] = arrays[k].reshape(f["shape"])
        data[layer["name"]] = arrays
    return manifest, data
