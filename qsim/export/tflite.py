"""Deployment export of a TFLite int8 / uint8 model: its MAC parameters as C headers (issue 16).

``export(model, out_dir)`` writes, per CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED operator,
``<stem>.h`` (stem ``op3_conv_2d``: operator index and type) with CMSIS-NN's names:

* ``<stem>_weights`` (``int8_t``; legacy uint8 models ``uint8_t``) as stored: CONV_2D OHWI,
  DEPTHWISE_CONV_2D [1, KH, KW, OC], FULLY_CONNECTED [OC, IC]; ``<stem>_bias`` ``int32_t``;
* ``<stem>_output_multiplier`` / ``<stem>_output_shift`` ``int32_t`` per output channel
  (``cmsis_nn_per_channel_quant_params``; one entry for per-tensor filters):
  QuantizeMultiplier(input_scale * filter_scale / output_scale), shift > 0 a left shift;
* ``#define``s ``<STEM>_INPUT_OFFSET`` (= -input zero point), ``_FILTER_OFFSET`` (= -filter
  zero point), ``_OUTPUT_OFFSET`` (= output zero point), ``_ACTIVATION_MIN`` / ``_MAX``
  (the fused activation in codes), ``_STRIDE_H/W``, ``_PADDING_H/W`` (top / left),
  ``_DILATION_H/W``, ``_CH_MULT``, the input / filter / output dims (``_INPUT_N/H/W/C``, ...)
  and the scales (``_INPUT_SCALE``, ``_OUTPUT_SCALE``, float; per-channel filter scales in a
  comment);

and ``model.h`` including every header with a table of the operators. The int8
FULLY_CONNECTED reference kernel requantizes in double and has no multiplier; the export
gives the int32 multiplier the optimized and CMSIS-NN kernels use instead (qsim's
``fc_requant="integer"`` what-if, ``qsim tflite --fc-integer`` counts where it differs) and
says so in the header. Multipliers follow the build's rounding: `TfliteOptions`.
"""
from __future__ import annotations

from pathlib import Path

from qsim.errors import InputError
from qsim.export import c_array, model_header, write_files
from qsim.tflite.executor import TfliteOptions, op_label, prepare
from qsim.tflite.reader import TfliteModel
from qsim.vectors.tflite import C_TYPES, WEIGHT_LAYOUTS, activation_bounds, file_stem, mac_kernels


def _dims(prefix: str, shape) -> list[tuple[str, int]]:
    names = {4: "NHWC", 2: "NC"}.get(len(shape))
    if names is None:
        return [(f"{prefix}_D{i}", int(d)) for i, d in enumerate(shape)]
    return [(f"{prefix}_{a}", int(d)) for a, d in zip(names, shape)]


def op_header(kernel, model_name: str) -> str:
    """The C header of one prepared MAC kernel (`prepare` with ``fc_requant="integer"``)."""
    k = kernel
    stem = file_stem(k)
    L = stem.upper()
    t_in, t_w, t_b, t_out = k.tin(0), k.tin(1), k.tin(2), k.tout()
    act_min, act_max = activation_bounds(k, t_out)
    fc = k.op.name == "FULLY_CONNECTED"
    scales = ", ".join(repr(float(s)) for s in t_w.quant.scale)
    lines = [
        f"/* qsim export: operator '{op_label(k.op, k.model)}' of '{model_name}', generated; do not edit.",
        f"   {t_in.type_name}: real = scale * (q - zero_point); filter {WEIGHT_LAYOUTS[k.op.name]}",
        f"   filter scale(s): {scales}",
        "   output = clamp(MultiplyByQuantizedMultiplier(acc, output_multiplier[oc], output_shift[oc]) + OUTPUT_OFFSET,",
        "                  ACTIVATION_MIN, ACTIVATION_MAX), acc = bias[oc] + sum (w + FILTER_OFFSET) * (x + INPUT_OFFSET)",
        "   rounding: " + ("TFLITE_SINGLE_ROUNDING (one rounding)" if k.options.single_rounding else
                          "double rounding (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT)"),
    ]
    if fc and not k.uint8:
        lines.append("   NOTE: TFLite's reference FULLY_CONNECTED (int8) requantizes with std::round(double(acc) * "
                     "input_scale * filter_scale / output_scale); these multipliers are the optimized / CMSIS-NN "
                     "kernels' integer form of that scale")
    lines[-1] += " */"
    lines += [f"#ifndef QSIM_{L}_H", f"#define QSIM_{L}_H", "#include <stdint.h>", ""]
    defines = [*_dims("INPUT", t_in.shape), *_dims("FILTER", t_w.shape), *_dims("OUTPUT", t_out.shape),
               ("INPUT_OFFSET", -k.in_zp), ("FILTER_OFFSET", -k.w_zp), ("OUTPUT_OFFSET", k.out_zp),
               ("ACTIVATION_MIN", act_min), ("ACTIVATION_MAX", act_max)]
    if not fc:
        defines += [("STRIDE_H", k.stride[0]), ("STRIDE_W", k.stride[1]), ("PADDING_H", k.pads[0]),
                    ("PADDING_W", k.pads[1]), ("DILATION_H", k.dil[0]), ("DILATION_W", k.dil[1])]
        if k.depthwise:
            defines.append(("CH_MULT", k.mult))
    lines += [f"#define {L}_{name} {value}" for name, value in defines]
    lines += [f"#define {L}_INPUT_SCALE {float(t_in.quant.scale[0])!r}f",
              f"#define {L}_OUTPUT_SCALE {float(t_out.quant.scale[0])!r}f", ""]
    lines += [f"/* weights: {t_w.type_name}, shape {'x'.join(map(str, t_w.shape))} */",
              c_array(C_TYPES[t_w.dtype], f"{stem}_weights", t_w.data)]
    if t_b is not None:
        lines += ["/* bias: int32 */", c_array("int32_t", f"{stem}_bias", t_b.data)]
    lines += ["/* Q0.31 multiplier per output channel */", c_array("int32_t", f"{stem}_output_multiplier", k.q),
              "/* shift per output channel (> 0: left shift) */", c_array("int32_t", f"{stem}_output_shift", k.shift),
              f"#endif /* QSIM_{L}_H */", ""]
    return "\n".join(lines)


def export(model: TfliteModel, out_dir: "str | Path", *, options: TfliteOptions | None = None,
           model_name: str = "") -> list[Path]:
    """Write ``<stem>.h`` per MAC operator and ``model.h``; returns the files."""
    options = options or TfliteOptions()
    prog = prepare(model, TfliteOptions(**{**options.to_dict(), "fc_requant": "integer"}))
    kernels = mac_kernels(prog)
    if not kernels:
        raise InputError(f"export: {model.path} has no CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED operator")
    name = model_name or Path(model.path).name
    files = [(f"{file_stem(k)}.h", op_header(k, name)) for k in kernels]
    comment = [f"/* qsim export: TFLite model '{name}', generated; do not edit.",
               "   operator | type | input | filter | output | per-channel */"]
    comment += [f"/* {file_stem(k)} | {k.op.name} | {list(k.tin(0).shape)} | {list(k.tin(1).shape)} | "
                f"{list(k.tout().shape)} | {bool(k.tin(1).quant.per_channel)} */" for k in kernels]
    files.append(("model.h", model_header(comment, f"QSIM_N_OPS {len(kernels)}", [f for f, _ in files])))
    return write_files(out_dir, files)

