"""The IEEE half-precision executor (plan mode ``fp16``).

Contract:

* Weights and biases are rounded to binary16 (round to nearest, ties to even: NumPy's
  ``astype(np.float16)``), once per call; an unfolded ``batch_norm`` is first folded into a
  per-channel scale and bias in float64.
* With ``plan.fp16_activations`` (default) the input and every node's output are rounded
  to binary16 too (storage in half precision); arithmetic inside a node runs in float32
  on those half values (a half-storage, single-precision-accumulate device, like most fp16
  NPUs and GPUs). Without it only the parameters are half (the paper's Table II "FP16":
  parameters converted to FP16 and back to float32).
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
from qsim.executors import float_exec
from qsim.executors.fixed_exec import _readers, float_params
from qsim.fixed.counters import OverflowCounter
from qsim.graph.ir import Graph, Node
from qsim.plan import MAC_OPS, Plan
from qsim.trace import Trace

HALF_MAX = 65504


def to_half(x: np.ndarray, counter: OverflowCounter | None = None) -> np.ndarray:
    """Round to binary16 (nearest even), returned as float32; count finite -> inf overflows.

    >>> to_half(np.array([1.0 + 2**-11, 65519.0, 65520.0])).tolist()
    [1.0, 65504.0, inf]
    """
    x = np.asarray(x)
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


def run(graph: Graph, x: Any, plan: Plan | None = None, *, counters: bool = True,
        keep_values: bool = True) -> Trace:
    """Run `graph` with half-precision parameters (and activations); see module doc.

    Args:
        plan: only ``plan.fp16_activations`` is read (formats are irrelevant); None means
            half parameters and half activations.
    """
    fp16_activations = True if plan is None else plan.fp16_activations
    trace = Trace("fp16")
    nodes = []
    for node in graph:
        if node.op in MAC_OPS:
            with node_context(node.name, node.op):
                kernel, bias, depthwise = float_params(node)
                cs = {"weights": OverflowCounter(f"{node.name}/weights")} if counters else {}
                weights = {"kernel": to_half(kernel, cs.get("weights"))}
                if bias is not None:
                    if counters:
                        cs["bias"] = OverflowCounter(f"{node.name}/bias")
                    weights["bias"] = to_half(bias, cs.get("bias"))
                if counters:
                    trace.counters[node.name] = cs
            attrs = dict(node.attrs) if node.op != "batch_norm" else {"strides": (1, 1), "pads": (0, 0, 0, 0)}
            op = "depthwise_conv2d" if depthwise else "conv2d"
            node = Node(node.name, op, list(node.inputs), attrs, weights, node.source_class)
        nodes.append(node)
    hgraph = Graph(nodes, list(graph.outputs), name=graph.name, source=graph.source)
    if not fp16_activations:
        ftrace = float_exec.run(hgraph, x, dtype=np.float32, keep_values=keep_values)
        trace.outputs, trace.values = ftrace.outputs, ftrace.values
        return trace
    feeds = float_exec.bind_inputs(hgraph, x)
    values: dict[str, np.ndarray] = {}
    remaining = _readers(hgraph)
    for node in hgraph:
        site = "input" if node.op == "input" else "act"
        c = OverflowCounter(f"{node.name}/{site}") if counters else None
        with node_context(node.name, node.op):
            if node.op == "input":
                out = float_exec.check_input(node, feeds[node.name], np.float32)
            else:
                out = float_exec.OP_KERNELS[node.op](node, [values[i] for i in node.inputs])
            values[node.name] = to_half(out, c)
        if counters:
            trace.counters.setdefault(node.name, {})[site] = c
        if keep_values:
            trace.values[node.name] = values[node.name]
        else:  # free tensors nobody reads any more
            for src in node.inputs:
                remaining[src] -= 1
                if remaining[src] == 0:
                    del values[src]
    for name in graph.outputs:
        trace.outputs[name] = values[name]
    return trace
