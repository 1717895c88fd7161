"""The ``"k210"`` executor for qsim Graphs: quantize the nncase 1.x way, run the KPU layers bit-exactly.

``run(graph, x, calibration=None, ...)`` quantizes `graph` (`qsim.k210.quantize.quantize_graph`)
and simulates it image by image: KPU layers through `KpuLayer.run` (exact integer pipeline),
CPU ops as described in `qsim.k210.quantize`. The returned `Trace` has, per graph node
name, the dequantized float value (``values``, NHWC) and the uint8 codes (``codes``); a
conv followed by a fused activation has no entry of its own (the KPU never materialises the
pre-activation tensor): its value is the activation's. ``formats[node]`` is the node's
`QParam` (uint8 affine: ``scale``, ``zero_point``). ``counters[node]`` holds the KPU
layer's `OverflowCounter`s (``acc``/``bn``: 36-bit ALU, ``act``: uint8 clamp) and, for the
input, the quantization clamp (``input``).

Quantizing needs calibration: pass ``calibration=`` an NHWC batch (or list of batches)
preprocessed like `x`, a ``{node: (min, max)}`` dict, or a `KpuProgram` from an earlier
`quantize_graph` (re-used as is). Without it (``qsim sweep``, ``qsim run --format k210``) the
ranges come from `default_calibration`: 8 FDDB pictures of the data folder at the model's
fixed input size (224x224 if free), scaled ``x / 127.5 - 1`` like every qsim face model; they
are computed once per graph and re-used for every input size (a program per size is built
from the same ranges, cheaply). Without the data folder the input calibrates itself (the
program's notes say so).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from qsim.errors import InputError, PlanError, node_context
from qsim.executors.float_exec import OP_KERNELS, bind_inputs, check_input
from qsim.k210.kpu import KpuSwitches
from qsim.k210.quantize import KpuProgram, QParam, quantize_graph
from qsim.trace import Trace

_CACHE: dict[tuple, KpuProgram] = {}
_RANGES: dict[int, tuple] = {}  # id(graph) -> (graph, ranges)
DEFAULT_CALIBRATION_IMAGES = 8


def default_calibration(graph) -> dict | None:
    """Per-node ranges on 8 FDDB pictures (x / 127.5 - 1); None without the data folder."""
    hit = _RANGES.get(id(graph))
    if hit is not None and hit[0] is graph:
        return hit[1]
    from qsim.datasets import data_root
    from qsim.images import list_images, load_image, mobilenet_preprocess, resize_bilinear
    from qsim.k210.quantize import calibrate

    root = data_root(required=False)
    if root is None or not (root / "fddb" / "originalPics").is_dir():
        return None
    h, w, _ = graph.inputs[0].attrs["shape"]
    hw = (int(h), int(w)) if h and w else (224, 224)
    paths = list_images(root / "fddb" / "originalPics", n=DEFAULT_CALIBRATION_IMAGES)
    cal = np.stack([mobilenet_preprocess(resize_bilinear(load_image(p), hw)) for p in paths]).astype(np.float32)
    ranges = calibrate(graph, cal)
    _RANGES[id(graph)] = (graph, ranges)
    return ranges


def _counter(site: str):
    from qsim.fixed.counters import OverflowCounter

    return OverflowCounter(site)


def prepare(graph, x, calibration=None, add_mode: str = "kpu") -> KpuProgram:
    """The `KpuProgram` for `graph` (cached per graph object and calibration object)."""
    if isinstance(calibration, KpuProgram):
        if calibration.graph is not graph:
            raise PlanError("the KpuProgram passed as calibration was built for another graph")
        return calibration
    h, w = np.asarray(next(iter(bind_inputs(graph, x).values()))).shape[-3:-1]
    key = (id(graph), id(calibration), add_mode, (h, w))
    prog = _CACHE.get(key)
    if prog is None or prog.graph is not graph:
        if calibration is None:
            ranges = default_calibration(graph)
            if ranges is None:
                prog = quantize_graph(graph, x, (h, w), add_mode)
                prog.notes.append("calibrated on the input itself (no data folder; pass calibration=)")
            else:
                prog = quantize_graph(graph, ranges, (h, w), add_mode)
                prog.notes.append(f"calibrated on {DEFAULT_CALIBRATION_IMAGES} FDDB pictures (x / 127.5 - 1)")
        else:
            prog = quantize_graph(graph, calibration, (h, w), add_mode)
        if len(_CACHE) > 16:
            _CACHE.clear()
        _CACHE[key] = prog
    return prog


def _to_chw(x_hwc: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x_hwc, (2, 0, 1)))


def _requant(q: np.ndarray, src: QParam, dst: QParam) -> np.ndarray:
    return dst.quantize(src.dequantize(q))[0]


def run(graph, x: Any, calibration: Any = None, switches: KpuSwitches = KpuSwitches(),
        add_mode: str = "kpu", keep_values: bool = True, **_ignored: Any) -> Trace:
    """Simulate `graph` on the K210 (see the module docstring). `x`: NHWC float batch or HWC image."""
    prog = prepare(graph, x, calibration, add_mode)
    feeds = bind_inputs(graph, x)
    trace = Trace("k210")
    batch_vals: dict[str, list[np.ndarray]] = {}
    batch_codes: dict[str, list[np.ndarray]] = {}
    first = next(iter(feeds.values()))
    n_images = np.asarray(first).shape[0] if np.asarray(first).ndim == 4 else 1
    arrays = {name: check_input(graph[name], arr, np.float32) for name, arr in feeds.items()}
    for name, arr in arrays.items():
        if tuple(arr.shape[1:3]) != tuple(prog.input_hw):
            raise InputError(f"input '{name}' is {arr.shape[1]}x{arr.shape[2]}; the K210 program was "
                             f"quantized for {prog.input_hw[0]}x{prog.input_hw[1]}")
    for i in range(n_images):
        codes: dict[str, np.ndarray] = {}  # name -> uint8 (C, H, W)
        for step in prog.steps:
            with node_context(step.name, step.kind):
                if step.kind == "input":
                    q, raw = step.out_q.quantize(_to_chw(arrays[step.name][i]))
                    trace.counters.setdefault(step.name, {}).setdefault("input", _counter("input")).observe(raw, 0, 255)
                    codes[step.name] = q
                elif step.kind in ("kpu", "add_kpu"):
                    if step.kind == "add_kpu":
                        a, b = step.inputs
                        xin = np.concatenate([_requant(codes[a], prog.params[a], step.concat_q),
                                              _requant(codes[b], prog.params[b], step.concat_q)])
                    else:
                        xin = codes[step.inputs[0]]
                    ctr = trace.counters.setdefault(step.name, {})
                    y = step.layer.run(xin, switches, counters=ctr)
                    if step.subsample is not None:
                        s, oy, ox = step.subsample
                        oh, ow = graph_shape(prog, step.node.name)
                        y = np.ascontiguousarray(y[:, oy::s, ox::s][:, :oh, :ow])
                    codes[step.name] = y
                else:
                    node = step.node
                    xs = [prog.params[src].dequantize(codes[src]).transpose(1, 2, 0)[None] for src in node.inputs]
                    out = OP_KERNELS[node.op](node, xs)[0]
                    codes[step.name] = step.out_q.quantize(_to_chw(out))[0]
            batch_codes.setdefault(step.name, []).append(codes[step.name])
    for step in prog.steps:
        if keep_values or step.name in graph.outputs:
            q = np.stack(batch_codes[step.name]).transpose(0, 2, 3, 1)
            trace.values[step.name] = step.out_q.dequantize(q)
            trace.codes[step.name] = q.astype(np.int64)
            trace.formats[step.name] = step.out_q  # affine uint8: .scale is the LSB
    for out in graph.outputs:
        trace.outputs[out] = trace.values[out]
    return trace


def graph_shape(prog: KpuProgram, name: str) -> tuple[int, int]:
    from qsim.graph.shapes import infer_shapes

    shapes = getattr(prog, "_shapes", None)
    if shapes is None:
        shapes = infer_shapes(prog.graph, prog.input_hw)
        prog._shapes = shapes  # type: ignore[attr-defined]
    h, w, _ = shapes[name]
    return int(h), int(w)
