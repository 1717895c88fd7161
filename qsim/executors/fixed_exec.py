"""The bit-accurate fixed-point executor: every tensor an integer of the plan's format.

``run(graph, x, plan)`` (mode ``full``):

1. ``x`` (float NHWC, already preprocessed) is quantized to the input node's ``act``
   format with the ``input`` site's rounding/overflow.
2. Weights and biases are quantized once per (graph, plan) with the ``weights``/``bias``
   sites' modes and cached (a ``batch_norm`` left unfolded becomes a 1x1 depthwise conv:
   scale ``gamma / sqrt(var + eps)``, bias ``beta - mean * scale``, computed in float64).
3. Every node runs its integer kernel (`OP_KERNELS`; contracts in `qsim.kernels`): exact
   accumulation, the accumulator width model (site ``acc``), one rescale to the node's
   ``act`` format (sites ``requant``/``add``/``concat``/``upsample``/``act``).
   ``pad`` and ``identity`` pass codes through in their input's format.
4. The `Trace` holds, per node, the int64 ``codes``, their ``formats`` and the
   dequantized ``values`` (float32 when the word has at most 24 bits, so exact; float64
   otherwise), and ``counters[node][site]`` (`OverflowCounter`).

Mode ``weights`` (the paper's Table II protocol) quantizes weights and biases, converts
them back to float and runs the float executor (float32, like TensorFlow); the trace has
float ``values`` and the ``weights``/``bias`` counters only. Mode ``fp16`` is
`qsim.executors.fp16_exec`.

Errors inside a node are re-raised naming it (`node_context`). Results depend neither on
the batch size nor on the number of Numba threads (all arithmetic is exact and integer).
"""
from __future__ import annotations

import json
import weakref
from typing import Any, Callable

import numpy as np

from qsim.errors import ModelError, PlanError, node_context
from qsim.executors.float_exec import bind_inputs, check_input
from qsim.fixed.cast import dequantize, quantize
from qsim.fixed.counters import OverflowCounter
from qsim.fixed.format import QFormat
from qsim.graph.ir import Graph, Node
from qsim.kernels import conv, eltwise, sigmoid, upsample
from qsim.plan import MAC_OPS, PASSTHROUGH_OPS, Mode, NodePlan, Plan
from qsim.trace import Trace


# --- quantized parameters, cached per (graph, plan) ------------------------------------
class QuantizedParams:
    """Weight and bias codes of one MAC node, the float kernel they came from, and counters."""

    def __init__(self, node: Node, np_: NodePlan):
        kernel, bias, depthwise = float_params(node)
        self.depthwise = depthwise
        self.counters = {"weights": OverflowCounter(f"{node.name}/weights")}
        self.kernel = quantize(kernel, np_.weights, rounding=np_.rounding_at("weights"),
                               overflow=np_.overflow_at("weights"), counter=self.counters["weights"])
        self.kernel.setflags(write=False)  # read-only: the kernels may cache forms of it (conv.derived)
        self.bias = None
        if bias is not None:
            self.counters["bias"] = OverflowCounter(f"{node.name}/bias")
            self.bias = quantize(bias, np_.bias, rounding=np_.rounding_at("bias"),
                                 overflow=np_.overflow_at("bias"), counter=self.counters["bias"])


def float_params(node: Node) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(kernel, bias or None, depthwise?) in float64; an unfolded batch_norm as a 1x1 depthwise."""
    for key, value in node.weights.items():
        arr = np.asarray(value)
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ModelError(f"node '{node.name}': weight '{key}' has {int(np.sum(~np.isfinite(arr)))} "
                             "non-finite value(s)")
    if node.op == "batch_norm":
        w = {k: np.asarray(node.weights[k], dtype=np.float64) for k in ("gamma", "beta", "mean", "variance")}
        scale = w["gamma"] / np.sqrt(w["variance"] + float(node.attrs.get("epsilon", 1e-3)))
        return scale.reshape(1, 1, -1, 1), w["beta"] - w["mean"] * scale, True
    kernel = np.asarray(node.weights["kernel"], dtype=np.float64)
    bias = node.weights.get("bias")
    return kernel, None if bias is None else np.asarray(bias, dtype=np.float64), node.op == "depthwise_conv2d"


_PARAM_CACHE: dict[int, dict[str, dict[str, QuantizedParams]]] = {}


def quantized_params(graph: Graph, plan: Plan) -> dict[str, QuantizedParams]:
    """Quantize every MAC node's parameters once per (graph, plan content); cached.

    The cache lives as long as the graph object and assumes its weights are not modified
    in place afterwards (passes build new graphs).
    """
    per_graph = _PARAM_CACHE.get(id(graph))
    if per_graph is None:
        per_graph = _PARAM_CACHE[id(graph)] = {}
        weakref.finalize(graph, _PARAM_CACHE.pop, id(graph), None)
    key = json.dumps({"plan": plan.to_dict(), "nodes": [n.name for n in graph]}, sort_keys=True)
    params = per_graph.get(key)
    if params is None:
        params = {}
        for node in graph:
            if node.op in MAC_OPS:
                with node_context(node.name, node.op):
                    params[node.name] = QuantizedParams(node, plan.for_node(node.name))
        per_graph[key] = params
    return params


# --- one function per op: (node, node plan, input codes, input formats, params, counters) -> codes
def _counter(counters, node: Node, site: str) -> OverflowCounter | None:
    if counters is None:
        return None
    c = counters.get(site)
    if c is None:
        c = counters[site] = OverflowCounter(f"{node.name}/{site}")
    return c


def _mac(node, np_, xs, fmts, params, counters, relu=None, keep_pre=False):
    p = params[node.name]
    acc = {"acc": _counter(counters, node, "acc"), "requant": _counter(counters, node, "requant")}
    if relu is not None:  # the ReLU node's "act" counter, fed by the fused tail
        acc["act"] = relu.pop("counter", None)
    if node.op == "batch_norm":
        strides, pads, dilation = (1, 1), (0, 0, 0, 0), (1, 1)
    else:
        strides = tuple(node.attrs.get("strides", (1, 1)))
        pads = node.attrs.get("pads", (0, 0, 0, 0))
        dilation = tuple(node.attrs.get("dilation", (1, 1)))
    return conv.conv2d(xs[0], p.kernel, p.bias, in_fmt=fmts[0], w_fmt=np_.weights, b_fmt=np_.bias,
                       out_fmt=np_.act, acc_bits=np_.acc_bits, rounding=np_.rounding_at("requant"),
                       overflow=np_.overflow_at("requant"), acc_overflow=np_.overflow_at("acc"),
                       acc_saturation=np_.acc_saturation, strides=strides, pads=pads, dilation=dilation,
                       depthwise=p.depthwise, counters=acc if counters is not None else None,
                       relu=relu, keep_pre=keep_pre)


def _relu(node, np_, xs, fmts, params, counters):
    if node.attrs.get("negative_slope", 0.0) or node.attrs.get("threshold", 0.0):
        raise ModelError(f"node '{node.name}': leaky/thresholded ReLU (negative_slope="
                         f"{node.attrs.get('negative_slope')}, threshold={node.attrs.get('threshold')}) "
                         "has no fixed-point kernel")
    return eltwise.relu(xs[0], in_fmt=fmts[0], out_fmt=np_.act, max_value=node.attrs.get("max_value"),
                        rounding=np_.rounding_at("act"), overflow=np_.overflow_at("act"),
                        counter=_counter(counters, node, "act"))


def _sigmoid(node, np_, xs, fmts, params, counters):
    return sigmoid.sigmoid(xs[0], in_fmt=fmts[0], out_fmt=np_.act, rounding=np_.rounding_at("act"),
                           overflow=np_.overflow_at("act"), counter=_counter(counters, node, "act"))


def _add(node, np_, xs, fmts, params, counters):
    return eltwise.add(xs, fmts, out_fmt=np_.act, rounding=np_.rounding_at("add"),
                       overflow=np_.overflow_at("add"), counter=_counter(counters, node, "add"))


def _concat(node, np_, xs, fmts, params, counters):
    axis = node.attrs.get("axis", -1)
    if axis not in (-1, 3):
        raise ModelError(f"node '{node.name}': concat along axis {axis}; only channels (-1) are supported")
    return eltwise.concat(xs, fmts, out_fmt=np_.act, rounding=np_.rounding_at("concat"),
                          overflow=np_.overflow_at("concat"), counter=_counter(counters, node, "concat"))


def _upsample(node, np_, xs, fmts, params, counters):
    kind = node.attrs.get("interpolation", "nearest")
    fn = {"nearest": eltwise.upsample_nearest, "bilinear": upsample.upsample_bilinear}.get(kind)
    if fn is None:
        raise ModelError(f"node '{node.name}': upsample interpolation {kind!r}; supported: nearest, bilinear")
    return fn(xs[0], tuple(node.attrs["size"]), in_fmt=fmts[0], out_fmt=np_.act,
              rounding=np_.rounding_at("upsample"), overflow=np_.overflow_at("upsample"),
              counter=_counter(counters, node, "upsample"))


def _pad(node, np_, xs, fmts, params, counters):
    return eltwise.pad(xs[0], node.attrs["pads"])


# op -> integer kernel (one literal; grep finds it). Output format: the node's act, except
# PASSTHROUGH_OPS (pad, identity) which keep their input's.
OP_KERNELS: dict[str, Callable[..., np.ndarray]] = {
    "conv2d": _mac,
    "depthwise_conv2d": _mac,
    "batch_norm": _mac,
    "relu": _relu,
    "sigmoid": _sigmoid,
    "add": _add,
    "concat": _concat,
    "upsample": _upsample,
    "pad": _pad,
    "identity": lambda node, np_, xs, fmts, params, counters: xs[0],
}


def _as_plan(plan: Any) -> Plan:
    if isinstance(plan, Plan):
        return plan
    if isinstance(plan, (str, QFormat)):
        return Plan.uniform(plan)
    raise PlanError(f"expected a Plan (or a format string such as 'Q6.9'), got {type(plan).__name__}")


def _int_codes(codes: np.ndarray) -> np.ndarray:
    """Kernels may hand back integer-valued float64 codes (BLAS-ready); the trace holds int64."""
    return codes if codes.dtype == np.int64 else codes.astype(np.int64)


def _values(codes: np.ndarray, fmt: QFormat) -> np.ndarray:
    """Dequantized values: float32 for words up to 24 bits (exact), float64 otherwise."""
    if fmt.word_bits <= 24:  # codes fit float32's 24-bit significand; lsb is a power of two
        return np.multiply(codes, np.float32(fmt.lsb), dtype=np.float32, casting="unsafe")
    if codes.dtype.kind == "f":  # integer-valued float64, |code| < 2**53: scaling is exact
        return codes * fmt.lsb
    return dequantize(codes, fmt)


def fusable_relus(graph: Graph) -> dict[str, str]:
    """MAC node -> the ReLU that is its only reader (run in the MAC's tail, same results)."""
    fused: dict[str, str] = {}
    readers: dict[str, list[Node]] = {n.name: [] for n in graph}
    for node in graph:
        for src in node.inputs:
            readers[src].append(node)
    for node in graph:
        if node.op not in MAC_OPS or len(readers[node.name]) != 1:
            continue
        r = readers[node.name][0]
        if r.op == "relu" and not r.attrs.get("negative_slope", 0.0) and not r.attrs.get("threshold", 0.0):
            fused[node.name] = r.name
    return fused


def run(graph: Graph, x: Any, plan: "Plan | str", *, counters: bool = True, keep_values: bool = True) -> Trace:
    """Run `graph` on `x` with every tensor an integer of `plan`'s formats.

    Args:
        graph: a `Graph` (e.g. from `qsim.load_model`).
        x: NHWC float batch (or one HWC image), already preprocessed; or {input name: array}.
        plan: a `Plan`, or a format string for `Plan.uniform` (e.g. ``"Q6.9"``).
        counters: count overflow at every site (False skips the counting work).
        keep_values: keep every node's codes/values in the trace (False: outputs only).

    Returns:
        `Trace` with ``executor="fixed"``.
    """
    plan = _as_plan(plan)
    plan.validate(graph)
    if plan.mode is Mode.FP16:
        from qsim.executors import fp16_exec

        return fp16_exec.run(graph, x, plan, counters=counters, keep_values=keep_values)
    params = quantized_params(graph, plan)
    if plan.mode is Mode.WEIGHTS:
        return _run_weights_only(graph, x, plan, params, counters, keep_values)
    return _run_full(graph, x, plan, params, counters, keep_values)


def _run_full(graph: Graph, x: Any, plan: Plan, params: dict, counters: bool, keep_values: bool) -> Trace:
    feeds = bind_inputs(graph, x)
    trace = Trace("fixed")
    codes: dict[str, np.ndarray] = {}
    formats: dict[str, QFormat] = {}
    remaining = _readers(graph)
    fused = fusable_relus(graph)
    done: dict[str, tuple[np.ndarray, dict | None]] = {}  # ReLUs already computed in a MAC tail
    for node in graph:
        np_ = plan.for_node(node.name)
        node_counters: dict[str, OverflowCounter] | None = {} if counters else None
        if node.name in params and counters:
            node_counters.update(_copy_counters(params[node.name].counters))
        with node_context(node.name, node.op):
            if node.name in done:
                out, relu_counters = done.pop(node.name)
                if counters:
                    node_counters = relu_counters
                fmt = np_.act
            elif node.name in fused:
                relu_node = graph[fused[node.name]]
                rp = plan.for_node(relu_node.name)
                spec = eltwise.relu_spec(np_.act, rp.act, relu_node.attrs.get("max_value"),
                                         rp.rounding_at("act"), rp.overflow_at("act"))
                relu_counters = {"act": OverflowCounter(f"{relu_node.name}/act")} if counters else None
                if counters:
                    spec["counter"] = relu_counters["act"]
                keep_pre = keep_values or node.name in graph.outputs
                # through OP_KERNELS (positional), so wrappers installed there (bench timing) see it
                res = OP_KERNELS[node.op](node, np_, [codes[i] for i in node.inputs],
                                          [formats[i] for i in node.inputs], params, node_counters,
                                          spec, keep_pre)
                post, out = res if keep_pre else (res, None)
                done[relu_node.name] = (post, relu_counters)
                fmt = np_.act
            elif node.op == "input":
                xf = check_input(node, feeds[node.name], np.float64)
                out = quantize(xf, np_.act, rounding=np_.rounding_at("input"), overflow=np_.overflow_at("input"),
                               counter=_counter(node_counters, node, "input"))
                fmt = np_.act
            else:
                kernel = OP_KERNELS.get(node.op)
                if kernel is None:
                    raise ModelError(f"op {node.op!r} has no fixed-point kernel")
                xs = [codes[i] for i in node.inputs]
                fmts = [formats[i] for i in node.inputs]
                out = kernel(node, np_, xs, fmts, params, node_counters)
                fmt = fmts[0] if node.op in PASSTHROUGH_OPS else np_.act
        if out is not None:  # None: a MAC whose codes only its fused ReLU needed
            codes[node.name] = out
        formats[node.name] = fmt
        if counters:
            trace.counters[node.name] = node_counters
        if keep_values:
            trace.codes[node.name] = _int_codes(out)
            trace.formats[node.name] = fmt
            trace.values[node.name] = _values(out, fmt)
        else:
            for src in node.inputs:
                remaining[src] -= 1
                if remaining[src] == 0:
                    codes.pop(src, None)
    for name in graph.outputs:
        trace.outputs[name] = trace.values[name] if keep_values else _values(codes[name], formats[name])
        if not keep_values:
            trace.codes[name], trace.formats[name] = _int_codes(codes[name]), formats[name]
    return trace


def _readers(graph: Graph) -> dict[str, int]:
    remaining = {n.name: 0 for n in graph}
    for node in graph:
        for src in node.inputs:
            remaining[src] += 1
    for out in graph.outputs:
        remaining[out] += 1
    return remaining


def _copy_counters(counters: dict[str, OverflowCounter]) -> dict[str, OverflowCounter]:
    return {site: OverflowCounter.from_dict(c.to_dict()) for site, c in counters.items()}


_WEIGHTS_ONLY_GRAPHS: dict[int, Graph] = {}


def _run_weights_only(graph, x, plan, params, counters, keep_values) -> Trace:
    """Quantize -> dequantize the parameters, run the float executor (paper's Table II)."""
    from qsim.executors import float_exec

    qgraph = _WEIGHTS_ONLY_GRAPHS.get(id(params))  # params are cached per (graph, plan): so is this
    if qgraph is None:
        qgraph = _WEIGHTS_ONLY_GRAPHS[id(params)] = _weights_only_graph(graph, plan, params)
        weakref.finalize(graph, _WEIGHTS_ONLY_GRAPHS.pop, id(params), None)
    ftrace = float_exec.run(qgraph, x, keep_values=keep_values)
    trace = Trace("fixed", outputs=ftrace.outputs, values=ftrace.values)
    if counters:
        for name, p in params.items():
            trace.counters[name] = _copy_counters(p.counters)
    return trace


def _weights_only_graph(graph, plan, params) -> Graph:
    """The graph with every MAC's parameters replaced by their dequantized codes (float32)."""
    nodes = []
    for node in graph:
        if node.name in params:
            p, np_ = params[node.name], plan.for_node(node.name)
            kernel = dequantize(p.kernel, np_.weights)
            bias = None if p.bias is None else dequantize(p.bias, np_.bias)
            if node.op == "batch_norm":
                weights = {"kernel": kernel.astype(np.float32)}
                if bias is not None:
                    weights["bias"] = bias.astype(np.float32)
                node = Node(node.name, "depthwise_conv2d", list(node.inputs),
                            {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilation": (1, 1)}, weights,
                            node.source_class)
            else:
                weights = dict(node.weights, kernel=kernel.astype(np.float32))
                if bias is not None:
                    weights["bias"] = bias.astype(np.float32)
                node = Node(node.name, node.op, list(node.inputs), dict(node.attrs), weights, node.source_class)
        nodes.append(node)
    return Graph(nodes, list(graph.outputs), name=graph.name, source=graph.source)


__all__ = ["run", "OP_KERNELS", "quantized_params", "float_params"]
