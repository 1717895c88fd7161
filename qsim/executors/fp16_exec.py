"""The IEEE half-precision backend (plan mode ``fp16``).

Contract:

* Weights and biases are rounded to binary16 (round to nearest, ties to even: NumPy's
  ``astype(np.float16)``), once in ``prepare``; an unfolded ``batch_norm`` is first folded
  into a per-channel scale and bias in float64 (run as a ``rescale``: x * scale + bias).
* With ``plan.fp16_activations`` (default) the input and every node's output are rounded
  to binary16 too (storage in half precision); arithmetic inside a node runs in float32
  on those half values (a half-storage, single-precision-accumulate device, like most fp16
  NPUs and GPUs). Without it only the parameters are half (the paper's Table II "FP16":
  parameters converted to FP16 and back to float32): the float backend runs the
  half-parameter graph.
* Overflow: a finite value beyond the largest half (65504) that rounds to ``inf`` is an
  event, counted at ``weights``/``bias`` (parameters), ``input`` and ``act`` (node outputs,
  whatever the op). Gradual underflow to subnormals/zero is not counted.

Returns a `Trace` with ``executor="fp16"``: float32 ``values`` holding half values, no codes.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from qsim.errors import node_context
from qsim.executors.float_exec import OP_KERNELS as FLOAT_KERNELS
from qsim.executors.float_exec import FloatProgram
from qsim.fixed.counters import OverflowCounter
from qsim.graph.ir import Graph, Node
from qsim.graph.ops import MAC_OPS, Op
from qsim.graph.passes.quantize_weights import mac_params
from qsim.kernels.half import round_half
from qsim.plan import Plan
from qsim.trace import Trace

HALF_MAX = 65504


def to_half(x: np.ndarray, counter: OverflowCounter | None = None) -> np.ndarray:
    """Round to binary16 (nearest even), returned as float32; count finite -> inf overflows.

    >>> to_half(np.array([1.0 + 2**-11, 65519.0, 65520.0])).tolist()
    [1.0, 65504.0, inf]
    """
    x = np.asarray(x)
    if x.dtype == np.float32 and x.size:  # one compiled pass (qsim.kernels.half), same bits
        h32, events, nans, peak_f = round_half(x)
        if not nans:  # NaN payloads: NumPy's rule, below
            if counter is not None:
                peak = math.inf if math.isinf(peak_f) else math.ceil(peak_f)
                counter.record(events=events, elements=x.size, peak=peak, lo=-HALF_MAX, hi=HALF_MAX)
            return h32
    with np.errstate(over="ignore"):
        h = x.astype(np.float16)
    if counter is not None and x.size:
        finite = np.isfinite(x)
        events = int(np.count_nonzero(np.isinf(h) & finite))
        mag = np.abs(x[~np.isnan(x)]) if x.dtype.kind == "f" else np.abs(x)
        peak_f = float(mag.max()) if mag.size else math.inf  # all NaN: no finite peak
        peak = math.inf if math.isinf(peak_f) else math.ceil(peak_f)
        counter.record(events=events, elements=x.size, peak=peak, lo=-HALF_MAX, hi=HALF_MAX)
    return h.astype(np.float32)


def half_parameter_graph(graph: Graph) -> tuple[Graph, dict[str, dict[str, OverflowCounter]]]:
    """`graph` with every MAC's kernel and bias rounded to binary16, and the counters of doing so."""
    counters: dict[str, dict[str, OverflowCounter]] = {}
    nodes = []
    for node in graph:
        if node.op in MAC_OPS:
            with node_context(node.name, node.op):
                kernel, bias, depthwise = mac_params(node)
                cs = counters[node.name] = {"weights": OverflowCounter(f"{node.name}/weights")}
                weights = {"kernel": to_half(kernel, cs["weights"])}
                if bias is not None:
                    cs["bias"] = OverflowCounter(f"{node.name}/bias")
                    weights["bias"] = to_half(bias, cs["bias"])
            if node.op in (Op.RESCALE, Op.BATCH_NORM):  # per channel, any rank: a rescale
                weights = {"scale": weights["kernel"].reshape(-1), "offset": weights["bias"]}
                op, attrs = Op.RESCALE.value, {}
            elif node.op == Op.DENSE:
                op, attrs = node.op, dict(node.attrs)
            else:
                attrs = dict(node.attrs)
                op = Op.DEPTHWISE_CONV2D.value if depthwise else Op.CONV2D.value
            node = Node(node.name, op, list(node.inputs), attrs, weights, node.source_class)
        nodes.append(node)
    return Graph(nodes, list(graph.outputs), name=graph.name, source=graph.source), counters


def _half(kernel):
    def run_half(prog, node, xs, ctx):
        return to_half(kernel(prog, node, xs, ctx), ctx.counter("act"))

    return run_half


class HalfProgram(FloatProgram):
    """Half-precision parameters and activations (float32 arithmetic inside a node)."""

    ops = {op: _half(kernel) for op, kernel in FLOAT_KERNELS.items()}
    counts_every_node = True
    fuses_activations = False  # every node's output is rounded to binary16 on its own

    def feed(self, node: Node, x: np.ndarray, ctx) -> np.ndarray:
        return to_half(x, ctx.counter("input"))


def prepare(graph: Graph, plan: Plan | None = None) -> FloatProgram:
    """The fp16 program of `graph`; only ``plan.fp16_activations`` is read (None: True)."""
    fp16_activations = True if plan is None else plan.fp16_activations
    hgraph, counters = half_parameter_graph(graph)
    if not fp16_activations:
        return FloatProgram(hgraph, np.float32, executor="fp16", static_counters=counters)
    return HalfProgram(hgraph, np.float32, executor="fp16", static_counters=counters)


def run(graph: Graph, x: Any, plan: Plan | None = None, *, counters: bool = True,
        keep_values: bool = True) -> Trace:
    """Run `graph` with half-precision parameters (and activations); see module doc."""
    return prepare(graph, plan).run(x, keep_values=keep_values, counters=counters)
