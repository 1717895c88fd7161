"""The ``"k210"`` backend for qsim Graphs: quantize the nncase 1.x way, run the KPU layers bit-exactly.

``prepare(graph, calibration=...)`` fixes the per-node ranges (`qsim.k210.quantize`);
running it on an input builds (once per input size, kept by the program) the KPU program
for that size (`quantize_graph`) and lowers it to a graph of its steps: ``kpu_conv`` (a KPU
layer: conv, BN, activation, pool; `KpuLayer.run`, exact integer pipeline), ``kpu_add``
(a residual add as a 1x1 KPU conv over the concatenation) and CPU ops (float, then
quantized back to uint8): the convs the KPU cannot run, concat, upsample, pad, and the MCU
layers (`CPU_MCU_OPS`: dense, rescale, pools, reshape, multiply; a tensor that is not an
image, e.g. (N, C) after a global pool, keeps its shape, images are CHW). Models must take
one image (H, W, C) input. The `Trace` has, per step, the dequantized float value
(``values``, NHWC) and the uint8 codes (``codes``); a conv followed by a fused activation
has no entry of its own (the KPU never materialises the pre-activation tensor): its value
is the activation's. ``formats[node]`` is the node's `QParam` (uint8 affine: ``scale``,
``zero_point``). ``counters[node]`` holds the KPU layer's `OverflowCounter`s (``acc``/``bn``:
36-bit ALU, ``act``: uint8 clamp) and, for the input, the quantization clamp (``input``).

Calibration is an explicit input, never read from disk behind the caller's back:

* an NHWC float batch (or a list of batches) preprocessed like the inputs: ranges are
  measured on it once (`qsim.k210.quantize.calibrate`);
* a ``{node: (min, max)}`` range table, or the path of one saved by `save_ranges`;
* a `KpuProgram` from an earlier `quantize_graph` (used as is; its input size only).

Without one, ``prepare`` raises a `PlanError` saying so.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from qsim.errors import InputError, ModelError, PlanError
from qsim.executors.float_exec import float_op
from qsim.fixed.counters import OverflowCounter
from qsim.graph.ir import Graph, Node
from qsim.graph.ops import Op
from qsim.graph.shapes import infer_shapes
from qsim.k210.kpu import KpuSwitches
from qsim.k210.quantize import ADD_MODES, KpuProgram, QParam, QStep, calibrate, quantize_graph
from qsim.runtime.walker import execute
from qsim.trace import Trace

RANGES_SCHEMA = 1


def save_ranges(ranges: dict[str, tuple[float, float]], path: "str | Path") -> Path:
    """Write a calibration range table (JSON) that ``calibration=path`` reads back."""
    path = Path(path)
    doc = {"qsim_k210_ranges": RANGES_SCHEMA, "ranges": {k: [float(lo), float(hi)] for k, (lo, hi) in ranges.items()}}
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def load_ranges(path: "str | Path") -> dict[str, tuple[float, float]]:
    """Read a range table written by `save_ranges`; `PlanError` naming the file otherwise."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        if doc.get("qsim_k210_ranges") != RANGES_SCHEMA:
            raise ValueError(f"not a qsim K210 range table (schema {RANGES_SCHEMA})")
        ranges = {str(k): (float(v[0]), float(v[1])) for k, v in doc["ranges"].items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise PlanError(f"calibration file {path}: {exc}") from None
    bad = [k for k, (lo, hi) in ranges.items() if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi)]
    if bad:
        raise PlanError(f"calibration file {path}: invalid range for node(s) {bad[:5]}")
    return ranges


def _to_chw(x_hwc: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x_hwc, (2, 0, 1)))


def _to_device(sample: np.ndarray) -> np.ndarray:
    """One sample in the layout the steps exchange: images CHW (the KPU's), other ranks as they are."""
    return _to_chw(sample) if sample.ndim == 3 else np.ascontiguousarray(sample)


def _to_host(sample: np.ndarray) -> np.ndarray:
    """The inverse of `_to_device`: CHW images back to HWC."""
    return np.transpose(sample, (1, 2, 0)) if sample.ndim == 3 else sample


def requantize_codes(q: np.ndarray, src: QParam, dst: QParam) -> np.ndarray:
    """uint8 codes of `src` as codes of `dst` (dequantize, quantize: what the CPU does)."""
    return dst.quantize(src.dequantize(q))[0]


# --- kernels on uint8 (N, C, H, W) codes -------------------------------------------------
def _kpu_conv(prog: "KpuStepsProgram", node: Node, xs, ctx) -> np.ndarray:
    step = prog.steps[node.name]
    counters = ctx.counters if ctx.counting else None
    out = []
    for x in xs[0]:
        y = step.layer.run(x, prog.switches, counters=counters)
        if step.subsample is not None:
            s, oy, ox = step.subsample
            oh, ow = prog.shapes[step.node.name][:2]
            y = np.ascontiguousarray(y[:, oy::s, ox::s][:, :oh, :ow])
        out.append(y)
    return np.stack(out)


def _kpu_add(prog: "KpuStepsProgram", node: Node, xs, ctx) -> np.ndarray:
    step = prog.steps[node.name]
    a, b = step.inputs
    counters = ctx.counters if ctx.counting else None
    out = []
    for qa, qb in zip(*xs):
        xin = np.concatenate([requantize_codes(qa, prog.params[a], step.concat_q),
                               requantize_codes(qb, prog.params[b], step.concat_q)])
        out.append(step.layer.run(xin, prog.switches, counters=counters))
    return np.stack(out)


def _cpu(prog: "KpuStepsProgram", node: Node, xs, ctx) -> np.ndarray:
    """A CPU op: dequantize the inputs, the float op, quantize to the step's uint8 param."""
    step = prog.steps[node.name]
    out = []
    for i in range(len(xs[0])):
        fx = [prog.params[src].dequantize(_to_host(x[i]))[None] for src, x in zip(node.inputs, xs)]
        out.append(step.out_q.quantize(_to_device(float_op(node, fx)[0]))[0])
    return np.stack(out)


OP_KERNELS = {Op.KPU_CONV: _kpu_conv, Op.KPU_ADD: _kpu_add}
CPU_OPS = (Op.BATCH_NORM, Op.CONV2D, Op.DEPTHWISE_CONV2D, Op.RELU, Op.SIGMOID, Op.PAD, Op.ADD, Op.CONCAT,
           Op.TANH, Op.HARD_SIGMOID, Op.HARD_SWISH, Op.SWISH, Op.SOFTMAX,  # never fused: float, as nncase's CPU
           Op.UPSAMPLE, Op.IDENTITY)
# the MCU layers, on the CPU the same way (float on the dequantized uint8, requantized): no KPU lowering
CPU_MCU_OPS = (Op.DENSE, Op.RESCALE, Op.AVG_POOL, Op.MAX_POOL, Op.GLOBAL_AVG_POOL, Op.GLOBAL_MAX_POOL, Op.RESHAPE,
               Op.MULTIPLY)


class KpuStepsProgram:
    """One `KpuProgram` (one input size) as a lowered graph the walker runs."""

    executor = "k210"
    ops = {**{op: _cpu for op in CPU_OPS + CPU_MCU_OPS}, **OP_KERNELS}
    counts_every_node = False
    input_dtype = np.dtype(np.float32)
    static_counters: dict = {}

    def __init__(self, kprog: KpuProgram, switches: KpuSwitches):
        self.kpu_program, self.switches, self.params = kprog, switches, kprog.params
        self.steps: dict[str, QStep] = {s.name: s for s in kprog.steps}
        self.shapes = infer_shapes(kprog.graph, tuple(kprog.input_hw))
        nodes = []
        for s in kprog.steps:
            if s.kind in ("kpu", "add_kpu"):
                op = Op.KPU_CONV if s.kind == "kpu" else Op.KPU_ADD
                nodes.append(Node(s.name, op.value, list(s.inputs), {}, {}, "KPU"))
            else:
                nodes.append(s.node)
        g = kprog.graph
        self.graph = Graph(nodes, list(g.outputs), name=g.name, source=g.source)

    def feed(self, node: Node, x: np.ndarray, ctx) -> np.ndarray:
        if tuple(x.shape[1:3]) != tuple(self.kpu_program.input_hw):
            raise InputError(f"input '{node.name}' is {x.shape[1]}x{x.shape[2]}; the K210 program was "
                             f"quantized for {self.kpu_program.input_hw[0]}x{self.kpu_program.input_hw[1]}")
        out_q = self.steps[node.name].out_q
        codes = []
        for img in x:
            q, raw = out_q.quantize(_to_chw(img))
            if ctx.counting:
                ctx.counters.setdefault("input", OverflowCounter("input")).observe(raw, 0, 255)
            codes.append(q)
        return np.stack(codes)

    def record(self, trace: Trace, node: Node, codes: np.ndarray, keep: bool) -> None:
        if keep:
            q = codes.transpose(0, 2, 3, 1) if codes.ndim == 4 else codes
            out_q = self.steps[node.name].out_q
            trace.values[node.name] = out_q.dequantize(q)
            trace.codes[node.name] = q.astype(np.int64)
            trace.formats[node.name] = out_q  # affine uint8: .scale is the LSB

    def run(self, x: Any, *, counters: bool = True, keep_values: bool = True) -> Trace:
        return execute(self, x, keep_values=keep_values, counters=counters)


class K210Program:
    """A graph with its calibration: builds (and keeps) a `KpuStepsProgram` per input size."""

    executor = "k210"

    def __init__(self, graph: Graph, ranges: dict | None, fixed: KpuProgram | None, switches: KpuSwitches,
                 add_mode: str):
        self.graph, self.ranges, self.switches, self.add_mode = graph, ranges, switches, add_mode
        self._by_size: dict[tuple[int, int], KpuStepsProgram] = {}
        if fixed is not None:
            self._by_size[tuple(fixed.input_hw)] = KpuStepsProgram(fixed, switches)

    def for_input(self, feeds: dict[str, Any]) -> KpuStepsProgram:
        """The program for the size of `feeds` (the walker calls this first)."""
        first = np.asarray(next(iter(feeds.values())))
        return self._for_size(tuple(int(v) for v in first.shape[-3:-1]))

    def _for_size(self, hw: tuple[int, int]) -> KpuStepsProgram:
        prog = self._by_size.get(hw)
        if prog is None:
            if self.ranges is None:  # a fixed KpuProgram: one size only
                only = next(iter(self._by_size))
                raise InputError(f"input is {hw[0]}x{hw[1]}; the K210 program was quantized for "
                                 f"{only[0]}x{only[1]}")
            prog = self._by_size[hw] = KpuStepsProgram(quantize_graph(self.graph, self.ranges, hw, self.add_mode),
                                                       self.switches)
        return prog

    def kpu_program(self, hw: tuple[int, int]) -> KpuProgram:
        """The quantized `KpuProgram` for input size `hw` (notes, layers, params)."""
        return self._for_size(tuple(hw)).kpu_program

    def run(self, x: Any, *, counters: bool = True, keep_values: bool = True) -> Trace:
        return execute(self, x, keep_values=keep_values, counters=counters)


def prepare(graph: Graph, plan: Any = None, *, calibration: Any = None, switches: KpuSwitches = KpuSwitches(),
            add_mode: str = "kpu") -> K210Program:
    """The K210 program of `graph` under an explicit `calibration` (see the module doc)."""
    if plan is not None:
        raise PlanError("the k210 backend quantizes the model itself (uint8 affine, nncase 1.x rules): "
                        "it takes calibration=, not a plan")
    if add_mode not in ADD_MODES:
        raise PlanError(f"add_mode must be one of {ADD_MODES}, got {add_mode!r}")
    image_inputs = [n for n in graph.inputs if len(n.attrs["shape"]) == 3]
    if len(image_inputs) != len(graph.inputs):
        bad = next(n for n in graph.inputs if n not in image_inputs)
        raise ModelError(f"{graph.source or graph.name}: input '{bad.name}' has shape {tuple(bad.attrs['shape'])}, "
                         "not an image (H, W, C): the K210 path takes image models (feature models run on the "
                         "fixed or float backend)")
    if calibration is None:
        raise PlanError("the k210 backend needs calibration=: images (an NHWC batch preprocessed like the "
                        "inputs), a {node: (min, max)} range table, or a range file (qsim.k210.executor.save_ranges)")
    if isinstance(calibration, KpuProgram):
        if calibration.graph is not graph:
            raise PlanError("the KpuProgram passed as calibration was built for another graph")
        return K210Program(graph, None, calibration, switches, add_mode)
    if isinstance(calibration, (str, Path)):
        ranges = load_ranges(calibration)
    elif isinstance(calibration, dict):
        ranges = dict(calibration)
    else:
        ranges = calibrate(graph, calibration)
    missing = [n.name for n in graph if n.name not in ranges]
    if missing:
        raise PlanError(f"calibration has no range for node(s) {missing[:5]} of {graph.name!r}")
    return K210Program(graph, ranges, None, switches, add_mode)


def run(graph, x: Any, calibration: Any = None, switches: KpuSwitches = KpuSwitches(),
        add_mode: str = "kpu", keep_values: bool = True, counters: bool = True) -> Trace:
    """Simulate `graph` on the K210 (prepare + execute; see the module doc)."""
    return prepare(graph, calibration=calibration, switches=switches, add_mode=add_mode).run(
        x, counters=counters, keep_values=keep_values)


__all__ = ["prepare", "run", "save_ranges", "load_ranges", "K210Program", "KpuStepsProgram"]
