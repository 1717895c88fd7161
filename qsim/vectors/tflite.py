"""Golden test vectors of a TFLite int8 / uint8 model, per MAC operator (issue 16).

``write_vectors(model, x, out_dir, layers=REGEX, format_out="npz"|"bin"|"c")`` runs the
reference program (`qsim.tflite.prepare`, bit-exact with BUILTIN_REF) once and writes, for
every selected CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED operator, with the files and
manifest conventions of the Q-plan vectors (`qsim.vectors`, one shared writer):

* ``input``   the input tensor's codes as stored (int8 / uint8, NHWC; FULLY_CONNECTED: the
  tensor's own shape, which the kernel reads as [batches, IC]);
* ``weights`` the filter codes as stored: CONV_2D OHWI [OC, KH, KW, IC], DEPTHWISE_CONV_2D
  [1, KH, KW, OC] (output channel ic * depth_multiplier + m reads input channel ic),
  FULLY_CONNECTED [OC, IC];
* ``bias``    the int32 bias codes [OC] (scale input_scale * filter_scale[oc]), when present;
* ``output_multiplier`` / ``output_shift`` int32, one per output channel (int8 per-channel)
  or one (uint8 / per-tensor): ``QuantizeMultiplier(input_scale * filter_scale / output_scale)``,
  multiplier a Q0.31 mantissa in [2^30, 2^31), shift > 0 a left shift, as the reference
  kernels and CMSIS-NN hold them. The int8 FULLY_CONNECTED reference requantizes in double:
  it has no multiplier; its ``effective_scale`` doubles are in the manifest instead (and in
  the C header as ``static const double <stem>_effective_scale[]``);
* ``acc``     the exact accumulator ``bias + sum (w - w_zp) * (x - in_zp)`` (int64, taps
  outside the image skipped), *before* the accumulator model; shaped as ``output``;
* ``output``  the output codes of the run.

Device rule (the manifest's ``requant``): ``acc`` narrowed to ``acc_bits`` (``acc_overflow``;
``wrap`` = C int32), then ``MultiplyByQuantizedMultiplier`` (``double`` rounding: SRDHM ties
toward +inf, then RoundingDivideByPOT ties away from zero; ``single``: one rounding, ties up)
or ``float`` (``std::round(double(acc) * effective_scale)``, halves away from zero), plus the
output zero point, clamped to [``act_min``, ``act_max``] (the fused activation within the
dtype range). Per layer the manifest also holds tensor indices, names, scales and zero
points, stride/dilation/padding, and the overflow counters of the run (sites ``acc``,
``requant``, ``act``).

Layer names are `op_label`'s ``"op3 CONV_2D -> <tensor name>"``; ``--layers`` searches them
(so ``^op(3|5) ``, ``DEPTHWISE`` or a tensor name select). Files are named ``op3_conv_2d``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from qsim.errors import InputError
from qsim.tflite import ops
from qsim.tflite.executor import _QTYPES, Program, TfliteOptions, op_label, prepare
from qsim.tflite.reader import Tensor, TfliteModel
from qsim.vectors import SCHEMA_VERSION, Field, counters_json, finish_manifest, layer_pattern, write_layer

MAC_TYPES = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
WEIGHT_LAYOUTS = {"CONV_2D": "OHWI [OC, KH, KW, IC]",
                  "DEPTHWISE_CONV_2D": "[1, KH, KW, OC]; output channel ic * depth_multiplier + m reads input channel ic",
                  "FULLY_CONNECTED": "[OC, IC]"}
REQUANT_RULES = {
    "double": "TFLite MultiplyByQuantizedMultiplier double rounding: RoundingDivideByPOT("
              "SaturatingRoundingDoublingHighMul(acc * 2^max(shift, 0), multiplier), max(-shift, 0)); "
              "SRDHM ties toward +inf, RoundingDivideByPOT ties away from zero",
    "single": "TFLITE_SINGLE_ROUNDING: (acc * multiplier + 2^(30 - shift)) >> (31 - shift), ties toward +inf",
    "float": "TFLite FULLY_CONNECTED int8 reference: (int32) std::round(double(acc) * effective_scale), "
             "halves away from zero, saturated to int32",
}
C_TYPES = {np.dtype(np.int8): "int8_t", np.dtype(np.uint8): "uint8_t", np.dtype(np.int32): "int32_t"}


def mac_kernels(prog: Program) -> list:
    """The prepared CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED kernels, in file order."""
    return [k for k in prog.kernels if k.op.name in MAC_TYPES]


def exact_accumulator(kernel, x: np.ndarray) -> np.ndarray:
    """bias + sum (w - w_zp)(x - in_zp) of one prepared MAC kernel for input codes `x` (int64)."""
    k = kernel
    if k.op.name == "FULLY_CONNECTED":
        return ops.fully_connected_acc(x.reshape(k.batches, k.w.shape[1]), k.in_zp, k.w, k.w_zp, k.bias)
    if k.depthwise:
        return ops.depthwise_acc(x, k.in_zp, k.w, k.w_zp, k.bias, k.stride, k.dil, k.pads, k.out_hw, k.mult)
    return ops.conv2d_acc(x, k.in_zp, k.w, k.w_zp, k.bias, k.stride, k.dil, k.pads, k.out_hw)


def requant_kind(kernel, options: TfliteOptions) -> str:
    """``float`` (int8 FULLY_CONNECTED reference), else ``single`` / ``double`` rounding."""
    if getattr(kernel, "float_requant", False):
        return "float"
    return "single" if options.single_rounding else "double"


def activation_bounds(kernel, out: Tensor) -> tuple[int, int]:
    """[act_min, act_max] in codes: the fused activation's range within the stored dtype."""
    qmin, qmax = _QTYPES[out.dtype]
    lo, hi = kernel.act
    return max(qmin, qmin if lo is None else lo), min(qmax, qmax if hi is None else hi)


def _tensor_json(t: Tensor | None) -> dict | None:
    if t is None:
        return None
    q = t.quant
    return {"index": t.index, "name": t.name, "dtype": t.type_name, "shape": list(t.shape),
            "scale": None if q is None else [float(s) for s in q.scale],
            "zero_point": None if q is None else [int(z) for z in q.zero_point]}


def c_doubles(name: str, values) -> str:
    """``static const double name[N]``: shortest round-trip decimals (a correctly rounding C
    compiler reads back the same doubles)."""
    vals = [repr(float(v)) for v in values]
    return f"static const double {name}[{len(vals)}] = {{\n    " + ", ".join(vals) + "\n};\n"


def layer_vectors(kernel, run, options: TfliteOptions) -> tuple[dict[str, Field], dict[str, Any], list]:
    """(fields, manifest entry without ``fields``, C defines) of one MAC operator."""
    k = kernel
    t_in, t_w, t_b, t_out = k.tin(0), k.tin(1), k.tin(2), k.tout()
    x = run.tensors[t_in.index]
    out_codes = run.tensors[t_out.index]
    acc = exact_accumulator(k, x).reshape(out_codes.shape)
    kind = requant_kind(k, options)
    act_min, act_max = activation_bounds(k, t_out)
    fields = {
        "input": Field(np.asarray(x), C_TYPES[x.dtype], f"input codes ({t_in.type_name}, zero point {k.in_zp})"),
        "weights": Field(np.asarray(t_w.data), C_TYPES[t_w.dtype], f"filter codes, {WEIGHT_LAYOUTS[k.op.name]}"),
    }
    if k.bias is not None:
        fields["bias"] = Field(np.asarray(t_b.data), "int32_t", "int32 bias codes")
    if kind != "float":
        fields["output_multiplier"] = Field(k.q.astype(np.int32), "int32_t", "Q0.31 multiplier per output channel")
        fields["output_shift"] = Field(k.shift.astype(np.int32), "int32_t", "shift per output channel (> 0: left)")
    fields["acc"] = Field(acc, "int64_t", f"exact accumulator, before the {options.acc_bits}-bit accumulator")
    fields["output"] = Field(np.asarray(out_codes), C_TYPES[out_codes.dtype], f"output codes ({t_out.type_name})")
    o = k.op.options
    fc = k.op.name == "FULLY_CONNECTED"
    entry: dict[str, Any] = {
        "name": op_label(k.op, k.model), "op": k.op.index, "type": k.op.name,
        "tensors": {"input": _tensor_json(t_in), "filter": _tensor_json(t_w), "bias": _tensor_json(t_b),
                    "output": _tensor_json(t_out)},
        "input_zero_point": k.in_zp, "filter_zero_point": k.w_zp, "output_zero_point": k.out_zp,
        "per_channel": bool(t_w.quant.per_channel), "weights_layout": WEIGHT_LAYOUTS[k.op.name],
        "fused_activation": int(o.get("fused_activation_function", 0)), "act_min": act_min, "act_max": act_max,
        "acc_bits": options.acc_bits, "acc_overflow": options.acc_overflow, "requant": kind,
        "requant_rule": REQUANT_RULES[kind],
    }
    if kind == "float":
        entry["effective_scale"] = [float(v) for v in k.eff]
    if not fc:
        entry.update(stride=list(k.stride), dilation=list(k.dil), padding="SAME" if int(o.get("padding", 0)) == 0
                     else "VALID", pads_top_left=list(k.pads), out_hw=list(k.out_hw))
        if k.depthwise:
            entry["depth_multiplier"] = k.mult
    defines = [("INPUT_ZP", k.in_zp), ("FILTER_ZP", k.w_zp), ("OUTPUT_ZP", k.out_zp), ("ACT_MIN", act_min),
               ("ACT_MAX", act_max), ("ACC_BITS", options.acc_bits)]
    if not fc:
        defines += [("STRIDE_H", k.stride[0]), ("STRIDE_W", k.stride[1]), ("DILATION_H", k.dil[0]),
                    ("DILATION_W", k.dil[1]), ("PAD_TOP", k.pads[0]), ("PAD_LEFT", k.pads[1])]
        if k.depthwise:
            defines.append(("DEPTH_MULTIPLIER", k.mult))
    return fields, entry, defines


def file_stem(kernel) -> str:
    """``op3_conv_2d``: operator index and type (tensor names are long and not unique-safe)."""
    return f"op{kernel.op.index}_{kernel.op.name.lower()}"


def write_vectors(model: TfliteModel, x: np.ndarray, out_dir: "str | Path", *, layers: str | None = None,
                  format_out: str = "npz", options: TfliteOptions | None = None,
                  input_shapes: dict | None = None, model_name: str = "") -> dict[str, Any]:
    """Write the vector set of `model` for input codes `x`; returns the manifest."""
    options = options or TfliteOptions()
    prog = prepare(model, options, input_shapes=input_shapes)
    pattern = layer_pattern(layers)
    kernels = [k for k in mac_kernels(prog) if pattern is None or pattern.search(op_label(k.op, k.model))]
    if not kernels:
        raise InputError(f"vectors: no {'/'.join(MAC_TYPES)} operator of {model.path} matches --layers {layers!r}")
    run = prog.run(x)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    entries = []
    for k in kernels:
        fields, entry, defines = layer_vectors(k, run, options)
        label = entry["name"]
        extra = ("/* effective_scale: the doubles the int8 FULLY_CONNECTED reference multiplies acc by */\n"
                 + c_doubles(f"{file_stem(k)}_effective_scale", entry["effective_scale"])
                 if entry["requant"] == "float" else "")
        entry["fields"] = write_layer(out, file_stem(k), f"operator {label}", fields, defines, format_out, files,
                                      c_extra=extra)
        entry["overflow"] = counters_json({key.rsplit("/", 1)[1]: c for key, c in run.counters.items()
                                           if key.rsplit("/", 1)[0] == label})
        entries.append(entry)
    path = Path(model.path) if model.path else None
    return finish_manifest(out, {
        "qsim_vectors": SCHEMA_VERSION, "backend": "tflite", "model": model_name or (path.name if path else ""),
        "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path and path.is_file() else None,
        "options": options.to_dict(), "input_shape": list(np.shape(x)),
        "layout": {"activations": "NHWC", "weights": WEIGHT_LAYOUTS},
        "rounding": REQUANT_RULES["single" if options.single_rounding else "double"],
        "format_out": format_out, "layers": entries,
    }, files)
