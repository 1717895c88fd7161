"""Deployment export: a plan's quantized parameters as C headers, and its formats for HLS.

``export(graph, plan, out_dir, target="c")`` writes, per MAC layer (conv2d, depthwise,
unfolded batch_norm), ``<layer>.h``:

* the weight codes (HWIO order, flattened C-order; depthwise: (KH,KW,C,mult)) and bias codes
  as ``static const intN_t`` arrays, N the smallest C word holding the format (8/16/32/64;
  ``uintN_t`` for unsigned formats), with the Q format in a comment;
* ``#define``s: shapes, fraction bits, ``<L>_BIAS_SHIFT`` (left shift aligning the bias into
  the accumulator: ``acc_frac - bias_frac``), ``<L>_OUT_SHIFT`` (right shift from the
  accumulator to the output: ``acc_frac - out_frac``; negative = a left shift),
  ``<L>_ACC_BITS``; the rounding and overflow modes in a comment.

and ``model.h``: includes every layer header and lists layers, shapes, formats and shifts.
``target="hls"`` adds ``<layer>_types.h`` per layer (``ap_fixed<W,I,Q,O>`` typedefs for
weight, bias, result and accumulator) and ``hls4ml_config.json`` (hls4ml's naming:
``Model.Precision``, ``LayerName.<layer>.Precision.{weight,bias,result,accum}``).

`hls4ml_config` / `plan_from_hls4ml` convert between a `Plan` and such a config
(``Plan.to_hls4ml`` / ``Plan.from_hls4ml``). ``ap_fixed<W,I>`` = ``Q(I-1).(W-I)``; the
quantization/overflow names map through `qsim.fixed.modes.FOREIGN_NAMES` (``AP_RND`` =
half_up, ``AP_SAT`` = saturate, ...); a type without them means ``AP_TRN``/``AP_WRAP``,
Vivado's defaults. A layer's ``result`` carries the modes of its output site (``requant``
for MAC layers, ``act``/``add``/``concat``/``upsample``/``input`` otherwise), ``weight`` and
``bias`` those of the parameter sites, ``accum`` the accumulator width and its overflow.

Only Q-format (fixed) plans are exported here; a TFLite int8 model's parameters are exported
by `qsim.export.tflite` (CMSIS-NN naming), with the C spelling helpers of this module.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from qsim.errors import PlanError
from qsim.fixed.format import QFormat
from qsim.fixed.modes import FOREIGN_NAMES, Overflow, Rounding
from qsim.graph.passes.quantize_weights import quantize_params
from qsim.plan import MAC_OPS, PASSTHROUGH_OPS, Mode, Plan

AP_NAMES = {v: k for k, v in FOREIGN_NAMES.items() if k.startswith("AP_")}  # our name -> AP_*
_AP = re.compile(r"^\s*ap_(u?)fixed\s*<\s*(\d+)\s*,\s*(-?\d+)\s*(?:,\s*(\w+)\s*)?(?:,\s*(\w+)\s*)?(?:,[^>]*)?>\s*$")
OUTPUT_SITE = {"input": "input", "relu": "act", "sigmoid": "act", "add": "add", "concat": "concat",
               "upsample": "upsample"}


# --- the parameters, as the fixed backend's program holds them --------------------------------
def quantized_parameters(graph, plan: Plan) -> dict[str, tuple[np.ndarray, np.ndarray | None, bool]]:
    """MAC node -> (weight codes, bias codes or None, depthwise?): `quantize_params`, the pass
    every backend's program uses."""
    return {name: (np.asarray(p.kernel, dtype=np.int64), None if p.bias is None else np.asarray(p.bias, dtype=np.int64),
                   bool(p.depthwise))
            for name, p in quantize_params(graph, plan).items()}


# --- C spelling -----------------------------------------------------------------------------
def c_type(fmt: QFormat) -> str:
    """The smallest ``[u]intN_t`` holding `fmt`'s codes."""
    for n in (8, 16, 32, 64):
        if fmt.word_bits <= n:
            return f"{'' if fmt.signed else 'u'}int{n}_t"
    raise PlanError(f"format {fmt} has a {fmt.word_bits}-bit word; C words hold at most 64")


def c_name(name: str) -> str:
    """A C identifier from a layer name (non-alphanumerics -> ``_``)."""
    ident = re.sub(r"\W", "_", name)
    return ident if not ident[:1].isdigit() else f"l_{ident}"


def c_array(ctype: str, name: str, codes: np.ndarray, per_line: int = 16) -> str:
    flat = np.asarray(codes, dtype=np.int64).ravel().tolist()
    rows = [", ".join(map(str, flat[i:i + per_line])) for i in range(0, len(flat), per_line)]
    body = ",\n    ".join(rows)
    return f"static const {ctype} {name}[{len(flat)}] = {{\n    {body}\n}};\n"


def ap_type(fmt: QFormat, rounding: Rounding, overflow: Overflow) -> str:
    """``ap_fixed<W,I,Q,O>`` of `fmt` with the modes' Vivado names."""
    return f"{fmt.ap_type[:-1]},{AP_NAMES[Rounding.parse(rounding).value]},{AP_NAMES[Overflow.parse(overflow).value]}>"


def parse_ap_type(text: str, where: str) -> tuple[QFormat, Rounding, Overflow]:
    """``ap_[u]fixed<W,I[,Q[,O]]>`` -> (format, rounding, overflow); absent modes: AP_TRN, AP_WRAP."""
    m = _AP.match(str(text))
    if not m:
        raise PlanError(f"{where}: expected an ap_fixed<W,I[,Q,O]> type, got {text!r}")
    fmt = QFormat.parse(f"ap_{m.group(1)}fixed<{m.group(2)},{m.group(3)}>")
    try:
        return fmt, Rounding.parse(m.group(4) or "AP_TRN"), Overflow.parse(m.group(5) or "AP_WRAP")
    except Exception as exc:
        raise PlanError(f"{where}: {exc}") from None


# --- layer table --------------------------------------------------------------------------
def layer_table(graph, plan: Plan) -> list[dict[str, Any]]:
    """Per MAC layer: shapes, formats, shifts and modes (JSON-able)."""
    formats = plan.activation_formats(graph)
    params = quantized_parameters(graph, plan)
    rows = []
    for node in graph:
        if node.op not in MAC_OPS:
            continue
        np_ = plan.for_node(node.name)
        kernel, bias, depthwise = params[node.name]
        in_fmt = formats[node.inputs[0]]
        acc_frac = np_.acc_frac_bits(in_fmt)
        rows.append({
            "name": node.name, "c_name": c_name(node.name), "op": node.op, "depthwise": depthwise,
            "input": node.inputs[0], "weights_shape": list(kernel.shape),
            "bias_shape": None if bias is None else list(bias.shape),
            "in_format": str(in_fmt), "weights_format": str(np_.weights), "bias_format": str(np_.bias),
            "out_format": str(np_.act), "acc_bits": np_.acc_bits, "acc_frac": acc_frac,
            "acc_saturation": np_.acc_saturation,
            "bias_shift": acc_frac - np_.bias.frac_bits, "out_shift": acc_frac - np_.act.frac_bits,
            "modes": {site: {"rounding": np_.rounding_at(site).value, "overflow": np_.overflow_at(site).value}
                      for site in ("weights", "bias", "acc", "requant")},
            "strides": list(node.attrs.get("strides", (1, 1))),
            "pads": node.attrs.get("pads", (0, 0, 0, 0)) if isinstance(node.attrs.get("pads"), str)
            else list(node.attrs.get("pads", (0, 0, 0, 0))),
        })
    return rows


def _layer_header(row: dict, kernel: np.ndarray, bias: np.ndarray | None) -> str:
    L = row["c_name"].upper()
    wf, bf, of = (QFormat.parse(row[k]) for k in ("weights_format", "bias_format", "out_format"))
    m = row["modes"]
    lines = [
        f"/* qsim export: layer '{row['name']}' ({row['op']}), generated; do not edit. */",
        f"#ifndef QSIM_{L}_H", f"#define QSIM_{L}_H", "#include <stdint.h>", "",
        f"/* input {row['in_format']}, weights {wf} ({c_type(wf)}), bias {bf} ({c_type(bf)}), output {of}",
        f"   accumulator: {row['acc_bits']} bits, {row['acc_frac']} fraction bits, overflow {m['acc']['overflow']}"
        f" ({row['acc_saturation']})",
        f"   requantization: rounding {m['requant']['rounding']}, overflow {m['requant']['overflow']}",
        "   weights are HWIO" + (" (KH,KW,C,mult): output channel c*mult+m reads input channel c" if row["depthwise"]
                                  else " (KH,KW,Cin,Cout)") + ", flattened in C order */",
    ]
    for i, ax in enumerate(("KH", "KW", "CIN", "MULT" if row["depthwise"] else "COUT")):
        lines.append(f"#define {L}_{ax} {row['weights_shape'][i]}")
    lines += [
        f"#define {L}_IN_FRAC {QFormat.parse(row['in_format']).frac_bits}",
        f"#define {L}_W_FRAC {wf.frac_bits}", f"#define {L}_BIAS_FRAC {bf.frac_bits}",
        f"#define {L}_OUT_FRAC {of.frac_bits}", f"#define {L}_ACC_BITS {row['acc_bits']}",
        f"#define {L}_BIAS_SHIFT {row['bias_shift']}  /* bias << BIAS_SHIFT aligns it into the accumulator */",
        f"#define {L}_OUT_SHIFT {row['out_shift']}  /* accumulator >> OUT_SHIFT (rounded) gives the output */",
        "",
        f"/* weights: {wf} */",
        c_array(c_type(wf), f"{row['c_name']}_weights", kernel),
    ]
    if bias is not None:
        lines += [f"/* bias: {bf} */", c_array(c_type(bf), f"{row['c_name']}_bias", bias)]
    lines += [f"#endif /* QSIM_{L}_H */", ""]
    return "\n".join(lines)


def _types_header(row: dict, plan: Plan) -> str:
    L, n = row["c_name"].upper(), row["c_name"]
    m = row["modes"]
    acc = QFormat.from_word(row["acc_bits"], row["acc_frac"], True)
    types = {
        "weight": ap_type(QFormat.parse(row["weights_format"]), m["weights"]["rounding"], m["weights"]["overflow"]),
        "bias": ap_type(QFormat.parse(row["bias_format"]), m["bias"]["rounding"], m["bias"]["overflow"]),
        "result": ap_type(QFormat.parse(row["out_format"]), m["requant"]["rounding"], m["requant"]["overflow"]),
        "accum": ap_type(acc, "floor", m["acc"]["overflow"]),
    }
    lines = [f"/* qsim export: ap_fixed types of layer '{row['name']}', generated; do not edit. */",
             f"#ifndef QSIM_{L}_TYPES_H", f"#define QSIM_{L}_TYPES_H", "#include <ap_fixed.h>", ""]
    lines += [f"typedef {t} {n}_{k}_t;" for k, t in types.items()]
    lines += ["", f"#endif /* QSIM_{L}_TYPES_H */", ""]
    return "\n".join(lines)


def model_header(comment: list[str], count_define: str, includes: list[str]) -> str:
    """``model.h`` of every exporter: the layer table as a comment, an include guard, the
    layer count (``count_define``, e.g. ``"QSIM_N_LAYERS 5"``) and one ``#include`` per header."""
    return "\n".join([*comment, "#ifndef QSIM_MODEL_H", "#define QSIM_MODEL_H", f"#define {count_define}",
                      *[f'#include "{h}"' for h in includes], "#endif /* QSIM_MODEL_H */", ""])


def write_files(out_dir: "str | Path", files: list[tuple[str, str]]) -> list[Path]:
    """Write ``(file name, text)`` pairs into `out_dir` (created); returns the paths in order."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files:
        written.append(out / name)
        written[-1].write_text(text, encoding="utf-8")
    return written


def _model_header(graph, rows: list[dict], target: str) -> str:
    comment = [f"/* qsim export: model '{graph.name}' ({graph.source or 'in memory'}), generated; do not edit.",
               "   layer | op | weights shape | in | weights | bias | out | acc bits | bias shift | out shift */"]
    for r in rows:
        comment.append(f"/* {r['name']} | {r['op']} | {'x'.join(map(str, r['weights_shape']))} | {r['in_format']} | "
                       f"{r['weights_format']} | {r['bias_format']} | {r['out_format']} | {r['acc_bits']} | "
                       f"{r['bias_shift']} | {r['out_shift']} */")
    includes = [h for r in rows for h in (f"{r['c_name']}.h",) + ((f"{r['c_name']}_types.h",) if target == "hls" else ())]
    return model_header(comment, f"QSIM_N_LAYERS {len(rows)}", includes)


def export(graph, plan: Plan, out_dir: "str | Path", target: str = "c") -> list[Path]:
    """Write the headers (and for ``hls`` the types and hls4ml config); returns the files."""
    if target not in ("c", "hls"):
        raise PlanError(f"export target {target!r}; expected 'c' or 'hls'")
    if plan.mode is Mode.FP16:
        raise PlanError("export: an fp16 plan has no Q formats; use a fixed-point plan (--format Q6.9 or --plan)")
    plan.validate(graph)
    rows = layer_table(graph, plan)
    params = quantized_parameters(graph, plan)
    files = []
    for row in rows:
        kernel, bias, _ = params[row["name"]]
        files.append((f"{row['c_name']}.h", _layer_header(row, kernel, bias)))
        if target == "hls":
            files.append((f"{row['c_name']}_types.h", _types_header(row, plan)))
    files.append(("model.h", _model_header(graph, rows, target)))
    if target == "hls":
        files.append(("hls4ml_config.json", json.dumps(hls4ml_config(plan, graph), indent=2) + "\n"))
    return write_files(out_dir, files)


# --- hls4ml precision config <-> Plan -------------------------------------------------------
def hls4ml_config(plan: Plan, graph) -> dict[str, Any]:
    """The plan as an hls4ml precision config (every node of `graph` listed)."""
    d = plan.default
    formats = plan.activation_formats(graph)
    cfg: dict[str, Any] = {"Model": {"Precision": ap_type(d["act"], d["rounding"], d["overflow"]),
                                     "ReuseFactor": 1}, "LayerName": {}}
    for node in graph:
        if node.op in PASSTHROUGH_OPS:
            continue
        np_ = plan.for_node(node.name)
        site = "requant" if node.op in MAC_OPS else OUTPUT_SITE.get(node.op, "act")
        prec = {"result": ap_type(np_.act, np_.rounding_at(site), np_.overflow_at(site))}
        if node.op in MAC_OPS:
            acc = QFormat.from_word(np_.acc_bits, np_.acc_frac_bits(formats[node.inputs[0]]), True)
            prec.update(weight=ap_type(np_.weights, np_.rounding_at("weights"), np_.overflow_at("weights")),
                        bias=ap_type(np_.bias, np_.rounding_at("bias"), np_.overflow_at("bias")),
                        accum=ap_type(acc, "floor", np_.overflow_at("acc")))
        cfg["LayerName"][node.name] = {"Precision": prec}
    return cfg


def plan_from_hls4ml(config: Mapping[str, Any], *, acc_bits: int = 32, source: str = "hls4ml config") -> Plan:
    """A full-integer `Plan` from an hls4ml precision config (see the module doc).

    ``Model.Precision`` (a type, or ``{"default": type}``) gives the default format and
    modes of every site; per layer ``weight``/``bias``/``result`` set the formats and the
    modes of the weights/bias/output sites, ``accum`` the accumulator width (its fraction
    bits are the product's in qsim) and its overflow. `acc_bits` is the default width when
    the config names no accumulator.
    """
    if not isinstance(config, Mapping) or "Model" not in config:
        raise PlanError(f"{source}: expected a dict with 'Model' (and optionally 'LayerName')")
    prec = config["Model"].get("Precision") if isinstance(config["Model"], Mapping) else None
    if isinstance(prec, Mapping):
        prec = prec.get("default")
    if prec is None:
        raise PlanError(f"{source}: 'Model.Precision' is missing")
    fmt, rnd, ovf = parse_ap_type(prec, f"{source} Model.Precision")
    plan = Plan.uniform(fmt, acc_bits=acc_bits, rounding=rnd, overflow=ovf)
    nodes: dict[str, dict] = {}
    for name, layer in (config.get("LayerName") or {}).items():
        where = f"{source} LayerName.{name}.Precision"
        p = layer.get("Precision", {}) if isinstance(layer, Mapping) else {}
        if isinstance(p, str):
            p = {"result": p}
        spec: dict[str, Any] = {"sites": {}}
        if "result" in p:
            f, r, o = parse_ap_type(p["result"], f"{where}.result")
            spec.update(act=str(f), rounding=r.value, overflow=o.value)
        for key, field in (("weight", "weights"), ("bias", "bias")):
            if key in p:
                f, r, o = parse_ap_type(p[key], f"{where}.{key}")
                spec[field] = str(f)
                spec["sites"][field] = {"rounding": r.value, "overflow": o.value}
        if "accum" in p:
            f, _, o = parse_ap_type(p["accum"], f"{where}.accum")
            spec["acc_bits"] = f.word_bits
            spec["sites"]["acc"] = {"overflow": o.value}
        nodes[str(name)] = spec
    return plan.with_nodes(nodes)
