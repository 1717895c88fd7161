"""Golden test vectors of a kmodel v4, per KPU layer (issue 16), in the KPU's CHW layout.

``write_vectors(path_or_model, x, out_dir, layers=REGEX, format_out="npz"|"bin"|"c")`` runs
`KmodelExecutor` once and writes, for every selected ``kpu_conv2d`` node, with the files and
manifest conventions of the Q-plan vectors (`qsim.vectors`, one shared writer); ``N`` is the
node's batch count, every map is compact channel-major (N, C, H, W), i.e. KPU RAM's
``(c, y, x)`` order without its 64-byte line padding (``k210-kpu.md`` §1.2):

* ``input``    uint8 (N, IC, H, W): the map the layer read from KPU RAM;
* ``weights``  uint8 (OC, IC, K, K), depthwise (OC, 1, K, K): as stored, no zero point removed;
* ``bn_mul`` int32 (int24 range), ``bn_shift`` uint8 (0..15), ``bn_add`` int32, per output
  channel, and ``bn_entries`` uint64: the 8-byte BN table words they decode from (§1.4);
* ``act_x_start`` int64 (int36), ``act_y_mul`` int16, ``act_shift`` uint8, ``act_bias``
  uint8, 16 segments each, and ``act_words`` uint64 [18]: the activation table as stored;
* ``acc``      int64 (N, OC, H, W): stage A, ``sum(X*W) + floor(arg_x*SX / 2^shr_x) +
  floor(arg_w*SW / 2^shr_w) + arg_add*G`` (G = IC, or 1 for depthwise; pads = pad_value);
* ``bn``       int64 (N, OC, H, W): stage B, ``floor(A*bn_mul / 2^bn_shift) + bn_add``;
* ``act``      uint8 (N, OC, H, W): stage C, the activation before pooling;
* ``output``   uint8 (N, OC, OH, OW): after pooling (stage D), what the layer writes back.

The manifest states per layer the register values the stages use (kernel size, depthwise,
pad_value, arg_x/shr_x/arg_w/shr_w/arg_add, pool type), every stage's rule with the KPU
switches of the run (`KpuSwitches`: segment compare, activation rounding, mean rounding, ALU
overflow), and the overflow counters (sites ``acc``/``bn``: the 36-bit ALU; ``act``: the
uint8 clamp). ``alu_overflow="exact"`` (the vendor emulator) keeps ``acc`` / ``bn`` exact;
``"wrap"`` stores them as the layer used them, wrapped to 36 bits.

Layer names are ``node3 kpu_conv2d`` (``--layers`` searches them); files ``node3_kpu_conv2d``.

`write_graph_vectors` does the same for a Keras graph quantized by qsim's own K210 path
(``qsim vectors MODEL.h5 --format k210 --calibration ...``: `qsim.k210.executor`, the nncase
1.x recipe): one entry per KPU step (``kpu``: a conv layer; ``add_kpu``: a residual add run
as a 1x1 KPU conv over the two operands requantized to one parameter and concatenated),
named after the graph node whose value it produces, with the uint8 affine parameters of its
input and output and the CPU subsampling that follows it, if any (``subsample``: stride,
row offset, column offset).
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from qsim.errors import InputError
from qsim.export import c_name
from qsim.k210.fields import encode_act, encode_bn
from qsim.k210.kmodel import Kmodel, read_kmodel
from qsim.k210.kmodel_exec import KmodelExecutor
from qsim.k210.kpu import POOL_TYPES, KpuLayer, KpuSwitches
from qsim.vectors import SCHEMA_VERSION, Field, counters_json, finish_manifest, layer_pattern, write_layer

LAYOUT = "NCHW compact: (batch, channel, row, column), KPU RAM order without the 64-byte line padding"
STAGE_RULES = {
    "acc": "A = sum(X*W) + floor(arg_x*SX / 2^shr_x) + floor(arg_w*SW / 2^shr_w) + arg_add*G; X = input or "
           "pad_value outside the map (3x3: a 1-pixel border), SX = sum of the window's X, SW = sum of the "
           "channel's weights, G = IC (depthwise: 1)",
    "bn": "B = floor(A*bn_mul / 2^bn_shift) + bn_add (arithmetic shift, no rounding)",
    "act": "segment i = highest i with B > x_start[i] (segment_compare strict; inclusive: >=), else 0; "
           "T = (B - x_start[i])*y_mul[i]; Z = clamp(round(T / 2^shift[i]) + bias[i], 0, 255), "
           "rounding act_rounding",
    "output": "pool_type on Z: bypass, max (out-of-range taps 0), mean (edge replicated, / K^2 with "
              "mean_rounding) or select; output size floor(in / stride)",
}


def layer_name(index: int) -> str:
    return f"node{index} kpu_conv2d"


def layer_stem(index: int) -> str:
    """The file / C name stem of a kmodel's KPU layer: ``node3_kpu_conv2d``."""
    return f"node{index}_kpu_conv2d"


def layer_fields(layer: KpuLayer, stages: dict[str, np.ndarray]) -> dict[str, Field]:
    """The fields of one KPU layer from its decoded tables and the run's stages."""
    bn, act = layer.bn, layer.act
    return {
        "input": Field(stages["input"], "uint8_t", "input map, uint8, NCHW"),
        "weights": Field(layer.weights, "uint8_t", "uint8 weights (OC, IC|1, K, K)"),
        "bn_mul": Field(bn.mul.astype(np.int32), "int32_t", "norm_mul (int24) per output channel"),
        "bn_shift": Field(bn.shift.astype(np.uint8), "uint8_t", "norm_shift (uint4) per output channel"),
        "bn_add": Field(bn.add.astype(np.int32), "int32_t", "norm_add (int32) per output channel"),
        "bn_entries": Field(encode_bn(bn), "uint64_t", "BN table words as stored"),
        "act_x_start": Field(act.x_start.astype(np.int64), "int64_t", "segment starts (int36)"),
        "act_y_mul": Field(act.y_mul.astype(np.int16), "int16_t", "segment slopes (int16)"),
        "act_shift": Field(act.shift.astype(np.uint8), "uint8_t", "segment shifts"),
        "act_bias": Field(act.bias.astype(np.uint8), "uint8_t", "segment biases (uint8)"),
        "act_words": Field(encode_act(act), "uint64_t", "activation table words as stored (16 segments + 2 bias)"),
        "acc": Field(stages["A"], "int64_t", "stage A (conv + offset terms)"),
        "bn": Field(stages["B"], "int64_t", "stage B (batchnorm)"),
        "act": Field(stages["Z"], "uint8_t", "stage C (activation, before pooling)"),
        "output": Field(stages["output"], "uint8_t", "output map after pooling, uint8, NCHW"),
    }


def layer_entry(name: str, layer: KpuLayer, batches: int) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """(manifest entry without fields/overflow, C defines) of one KPU layer."""
    a = layer.args
    regs = {"kernel_size": a.kernel_size, "depthwise": a.depthwise, "in_channels": a.in_channels,
            "out_channels": a.out_channels, "in_hw": list(a.in_hw), "out_hw": list(a.out_hw),
            "pad_value": a.pad_value, "arg_x": a.arg_x, "shr_x": a.shr_x, "arg_w": a.arg_w, "shr_w": a.shr_w,
            "arg_add": a.arg_add, "pool_type": a.pool_type, "pool": POOL_TYPES[a.pool_type][0]}
    entry = {"name": name, "batches": batches, **regs,
             "registers_raw": asdict(a)}
    defines = [("KERNEL", a.kernel_size), ("DEPTHWISE", int(a.depthwise)), ("IN_CHANNELS", a.in_channels),
               ("OUT_CHANNELS", a.out_channels), ("IN_H", a.in_hw[0]), ("IN_W", a.in_hw[1]),
               ("OUT_H", a.out_hw[0]), ("OUT_W", a.out_hw[1]), ("PAD_VALUE", a.pad_value),
               ("ARG_X", a.arg_x), ("SHR_X", a.shr_x), ("ARG_W", a.arg_w), ("SHR_W", a.shr_w),
               ("ARG_ADD", f"{a.arg_add}LL"), ("POOL_TYPE", a.pool_type), ("BATCHES", batches)]
    return entry, defines


def write_vectors(model: "Kmodel | str | Path", inputs, out_dir: "str | Path", *, layers: str | None = None,
                  format_out: str = "npz", switches: KpuSwitches = KpuSwitches(),
                  model_name: str = "") -> dict[str, Any]:
    """Write the vector set of a kmodel v4 for `inputs` (one array, or a list per model input,
    as its input memory holds it: uint8 NCHW for a KPU input); returns the manifest."""
    model = model if isinstance(model, Kmodel) else read_kmodel(model)
    ex = KmodelExecutor(model, switches)
    pattern = layer_pattern(layers)
    chosen = [i for i in sorted(ex.layers) if pattern is None or pattern.search(layer_name(i))]
    if not chosen:
        raise InputError(f"vectors: no kpu_conv2d node of {model.path} matches --layers {layers!r}")
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    stages: dict[int, dict[str, np.ndarray]] = {}
    run = ex.run(*inputs, count_overflow=True, stages=stages)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    entries = []
    for i in chosen:
        layer = ex.layers[i]
        entry, defines = layer_entry(layer_name(i), layer, model.nodes[i].body.batches)
        entry["node"] = i
        entry["fields"] = write_layer(out, layer_stem(i), f"KPU layer {layer_name(i)} of '{Path(model.path).name}'",
                                      layer_fields(layer, stages[i]), defines, format_out, files)
        entry["overflow"] = counters_json(run.counters.get(f"node{i}_kpu_conv2d", {}))
        entries.append(entry)
    path = Path(model.path) if model.path else None
    return finish_manifest(out, {
        "qsim_vectors": SCHEMA_VERSION, "backend": "k210", "model": model_name or (path.name if path else ""),
        "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path and path.is_file() else None,
        "switches": asdict(switches), "input_shapes": [list(np.shape(x)) for x in inputs],
        "layout": {"maps": LAYOUT, "weights": "(OC, IC, K, K); depthwise (OC, 1, K, K)"},
        "rules": STAGE_RULES, "alu_bits": 36, "format_out": format_out, "layers": entries,
    }, files)


def write_graph_vectors(graph, calibration, x: np.ndarray, out_dir: "str | Path", *, layers: str | None = None,
                        format_out: str = "npz", switches: KpuSwitches = KpuSwitches(),
                        model_name: str = "") -> dict[str, Any]:
    """The KPU-layer vector set of a qsim `Graph` on qsim's K210 backend for float NHWC `x`."""
    from qsim.k210.executor import prepare, requantize_codes

    prog = prepare(graph, calibration=calibration, switches=switches)
    x = np.asarray(x, np.float32)
    trace = prog.run(x)
    kprog = prog.kpu_program(tuple(x.shape[1:3]))
    pattern = layer_pattern(layers)
    steps = [s for s in kprog.steps if s.kind in ("kpu", "add_kpu") and (pattern is None or pattern.search(s.name))]
    if not steps:
        raise InputError(f"vectors: no KPU layer of {graph.name!r} matches --layers {layers!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    entries = []
    for step in steps:
        codes = [trace.codes[src].transpose(0, 3, 1, 2).astype(np.uint8) for src in step.inputs]
        if step.kind == "kpu":
            xin = codes[0]
        else:  # the two operands in one parameter, concatenated on channels (as the KPU add runs)
            xin = np.concatenate([requantize_codes(c, kprog.params[src], step.concat_q)
                                  for src, c in zip(step.inputs, codes)], axis=1)
        counters: dict = {}
        kept: dict[str, list] = {"input": [], "A": [], "B": [], "Z": [], "output": []}
        for xb in xin:
            keep: dict = {}
            y = step.layer.run(np.ascontiguousarray(xb), switches, counters=counters, keep=keep)
            for key, v in (("input", xb), ("A", keep["A"]), ("B", keep["B"]), ("Z", keep["Z"]), ("output", y)):
                kept[key].append(v)
        stages = {k: np.stack(v) for k, v in kept.items()}
        entry, defines = layer_entry(step.name, step.layer, len(xin))
        in_q = step.concat_q if step.kind == "add_kpu" else kprog.params[step.inputs[0]]
        entry.update(step=step.kind, inputs=list(step.inputs), subsample=None if step.subsample is None
                     else list(step.subsample), input_param={"scale": float(in_q.scale), "zero_point": int(in_q.zero_point)},
                     output_param={"scale": float(step.out_q.scale), "zero_point": int(step.out_q.zero_point)})
        entry["fields"] = write_layer(out, c_name(step.name), f"KPU layer '{step.name}' of '{graph.name}'",
                                      layer_fields(step.layer, stages), defines, format_out, files)
        entry["overflow"] = counters_json(counters)
        entries.append(entry)
    return finish_manifest(out, {
        "qsim_vectors": SCHEMA_VERSION, "backend": "k210", "model": model_name or graph.name,
        "switches": asdict(switches), "input_shapes": [list(x.shape)],
        "layout": {"maps": LAYOUT, "weights": "(OC, IC, K, K); depthwise (OC, 1, K, K)"},
        "rules": STAGE_RULES, "alu_bits": 36, "format_out": format_out, "layers": entries,
    }, files)
