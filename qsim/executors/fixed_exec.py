"""The bit-accurate fixed-point backend: every tensor an integer of the plan's format.

``prepare(graph, plan)`` (plan mode ``full``) builds a `FixedProgram`:

1. the ``fuse_activation`` pass (a new graph: plain ReLUs run in their MAC's tail, same
   codes as running them alone);
2. weights and biases quantized once with the ``weights``/``bias`` sites' modes
   (`qsim.graph.passes.quantize_weights`; an unfolded ``batch_norm`` becomes a 1x1
   depthwise conv), owned by the program with the kernels' derived weight forms.

Running it (`qsim.runtime.walker.execute`):

1. ``x`` (float NHWC, already preprocessed) is quantized to the input node's ``act``
   format with the ``input`` site's rounding/overflow.
2. Every node runs its integer kernel (`OP_KERNELS`; contracts in `qsim.kernels`): exact
   accumulation, the accumulator width model (site ``acc``), one rescale to the node's
   ``act`` format (sites ``requant``/``add``/``concat``/``upsample``/``act``; ``pool`` for
   the average pools' one rounded division, ``mul`` for a product). ``dense``, ``rescale``
   and ``batch_norm`` on a tensor that is not NHWC run as a 1x1 conv at every position.
   The pass-through ops (``pad``, ``identity``, ``reshape``, ``max_pool``,
   ``global_max_pool``) move codes in their input's format.
3. The `Trace` holds, per node, the int64 ``codes``, their ``formats`` and the
   dequantized ``values`` (float32 when the word has at most 24 bits, so exact; float64
   otherwise), and ``counters[node][site]`` (`OverflowCounter`).

Plan modes ``weights`` and ``fp16`` are other backends (`qsim.runtime.backend_for`):
weights-only is the ``quantize_weights`` pass followed by the float backend, fp16 is
`qsim.executors.fp16_exec`. This backend refuses them.

Results depend neither on the batch size nor on the number of Numba threads (all
arithmetic is exact and integer).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from qsim.errors import ModelError, PlanError
from qsim.executors import fixed_activations
from qsim.executors.fixed_activations import site_args
from qsim.fixed.cast import dequantize, quantize
from qsim.fixed.counters import OverflowCounter
from qsim.fixed.format import QFormat
from qsim.graph.ir import Graph, Node
from qsim.graph.ops import Op
from qsim.graph.passes import run_passes
from qsim.graph.passes.quantize_weights import QuantizedParams, quantize_params
from qsim.kernels import conv, eltwise, multiply, pool, sigmoid, upsample
from qsim.plan import Mode, Plan, as_plan
from qsim.runtime.protocol import Codes, NodeRun
from qsim.runtime.walker import execute
from qsim.trace import Trace


# --- one function per op: (program, node, input Codes, ctx) -> Codes ------------------------
def _mac(prog: "FixedProgram", node: Node, xs: list[Codes], ctx: NodeRun) -> Codes:
    np_ = prog.node_plans[node.name]
    p = prog.params[node.name]
    counters = {"acc": ctx.counter("acc"), "requant": ctx.counter("requant")}
    relu, keep_pre = None, False
    fused = node.attrs.get("fused_activation")
    if fused is not None:  # the ReLU's codes come out of this tail; its "act" counter is fed here
        relu_node, rp = prog.graph[fused], prog.node_plans[fused]
        relu = eltwise.relu_spec(np_.act, rp.act, relu_node.attrs.get("max_value"),
                                 rp.rounding_at("act"), rp.overflow_at("act"))
        relu_counters = {"act": OverflowCounter(f"{fused}/act")} if ctx.counting else None
        counters["act"] = None if relu_counters is None else relu_counters["act"]
        keep_pre = ctx.keep
    if node.op == Op.BATCH_NORM:
        strides, pads, dilation = (1, 1), (0, 0, 0, 0), (1, 1)
    else:
        strides = tuple(node.attrs.get("strides", (1, 1)))
        pads = node.attrs.get("pads", (0, 0, 0, 0))
        dilation = tuple(node.attrs.get("dilation", (1, 1)))
    # dense / rescale / batch_norm on a tensor that is not NHWC: a 1x1 conv at every position
    mac = conv.conv2d if xs[0].codes.ndim == 4 else conv.dense
    res = mac(xs[0].codes, p.conv_kernel, p.bias, in_fmt=xs[0].fmt, w_fmt=np_.weights, b_fmt=np_.bias,
              out_fmt=np_.act, acc_bits=np_.acc_bits, rounding=np_.rounding_at("requant"),
              overflow=np_.overflow_at("requant"), acc_overflow=np_.overflow_at("acc"),
              acc_saturation=np_.acc_saturation, strides=strides, pads=pads, dilation=dilation,
              depthwise=p.depthwise, counters=counters if ctx.counting else None,
              relu=relu, keep_pre=keep_pre, derived=prog.derived)
    if relu is None:
        return Codes(res, np_.act)
    post, pre = res if keep_pre else (res, None)
    ctx.state[fused] = (Codes(post, prog.node_plans[fused].act), relu_counters)
    return Codes(pre, np_.act)


def _relu(prog, node, xs, ctx):
    if node.attrs.get("fused_into") is not None:  # computed in the MAC's tail
        out, counters = ctx.state.pop(node.name)
        if counters:
            ctx.counters.update(counters)
        return out
    if node.attrs.get("negative_slope", 0.0) or node.attrs.get("threshold", 0.0):
        return fixed_activations.leaky_relu(prog, node, xs, ctx)
    return Codes(eltwise.relu(xs[0].codes, in_fmt=xs[0].fmt, max_value=node.attrs.get("max_value"),
                              **site_args(prog, node, ctx)), prog.node_plans[node.name].act)


def _sigmoid(prog, node, xs, ctx):
    return Codes(sigmoid.sigmoid(xs[0].codes, in_fmt=xs[0].fmt, **site_args(prog, node, ctx)),
                 prog.node_plans[node.name].act)


def _add(prog, node, xs, ctx):
    return Codes(eltwise.add([x.codes for x in xs], [x.fmt for x in xs], **site_args(prog, node, ctx, "add")),
                 prog.node_plans[node.name].act)


def _concat(prog, node, xs, ctx):
    axis = node.attrs.get("axis", -1)
    if axis not in (-1, 3):
        raise ModelError(f"node '{node.name}': concat along axis {axis}; only channels (-1) are supported")
    return Codes(eltwise.concat([x.codes for x in xs], [x.fmt for x in xs], **site_args(prog, node, ctx, "concat")),
                 prog.node_plans[node.name].act)


def _avg_pool(prog, node, xs, ctx):
    return Codes(pool.avg_pool(xs[0].codes, tuple(node.attrs["pool_size"]), tuple(node.attrs["strides"]),
                               node.attrs.get("pads", (0, 0, 0, 0)), in_fmt=xs[0].fmt,
                               **site_args(prog, node, ctx, "pool")), prog.node_plans[node.name].act)


def _global_avg_pool(prog, node, xs, ctx):
    return Codes(pool.global_avg_pool(xs[0].codes, node.attrs.get("keepdims", False), in_fmt=xs[0].fmt,
                                      **site_args(prog, node, ctx, "pool")), prog.node_plans[node.name].act)


def _multiply(prog, node, xs, ctx):
    return Codes(multiply.multiply([x.codes for x in xs], [x.fmt for x in xs], **site_args(prog, node, ctx, "mul")),
                 prog.node_plans[node.name].act)


def _upsample(prog, node, xs, ctx):
    kind = node.attrs.get("interpolation", "nearest")
    fn = {"nearest": eltwise.upsample_nearest, "bilinear": upsample.upsample_bilinear}.get(kind)
    if fn is None:
        raise ModelError(f"node '{node.name}': upsample interpolation {kind!r}; supported: nearest, bilinear")
    return Codes(fn(xs[0].codes, tuple(node.attrs["size"]), in_fmt=xs[0].fmt, **site_args(prog, node, ctx, "upsample")),
                 prog.node_plans[node.name].act)


# op -> integer kernel (one literal; grep finds it). Output format: the node's act, except
# PASSTHROUGH_OPS (pad, identity, reshape, max pools) which keep their input's.
OP_KERNELS = {
    Op.CONV2D: _mac,
    Op.DEPTHWISE_CONV2D: _mac,
    Op.BATCH_NORM: _mac,
    Op.RELU: _relu,
    Op.SIGMOID: _sigmoid,
    Op.TANH: fixed_activations.tanh,
    Op.HARD_SIGMOID: fixed_activations.hard_sigmoid,
    Op.HARD_SWISH: fixed_activations.hard_swish,
    Op.SWISH: fixed_activations.swish,
    Op.SOFTMAX: fixed_activations.softmax_op,
    Op.ADD: _add,
    Op.CONCAT: _concat,
    Op.UPSAMPLE: _upsample,
    Op.PAD: lambda prog, node, xs, ctx: Codes(eltwise.pad(xs[0].codes, node.attrs["pads"]), xs[0].fmt),
    Op.IDENTITY: lambda prog, node, xs, ctx: xs[0],
    Op.DENSE: _mac,
    Op.RESCALE: _mac,
    Op.AVG_POOL: _avg_pool,
    Op.GLOBAL_AVG_POOL: _global_avg_pool,
    Op.MAX_POOL: lambda prog, node, xs, ctx: Codes(pool.max_pool(
        xs[0].codes, tuple(node.attrs["pool_size"]), tuple(node.attrs["strides"]),
        node.attrs.get("pads", (0, 0, 0, 0))), xs[0].fmt),
    Op.GLOBAL_MAX_POOL: lambda prog, node, xs, ctx: Codes(pool.global_max_pool(
        xs[0].codes, node.attrs.get("keepdims", False)), xs[0].fmt),
    Op.RESHAPE: lambda prog, node, xs, ctx: Codes(np.ascontiguousarray(xs[0].codes).reshape(
        (xs[0].codes.shape[0],) + tuple(int(d) for d in node.attrs["shape"])), xs[0].fmt),
    Op.MULTIPLY: _multiply,
}


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


class FixedProgram:
    """A graph, a full-integer plan and what they fix before any input (see module doc)."""

    executor = "fixed"
    ops = OP_KERNELS
    counts_every_node = True
    input_dtype = np.dtype(np.float64)

    def __init__(self, graph: Graph, plan: Plan):
        self.plan = plan
        self.graph = run_passes(graph, ("fuse_activation",))
        self.node_plans = {n.name: plan.for_node(n.name) for n in self.graph}
        self.params: dict[str, QuantizedParams] = quantize_params(self.graph, plan)
        self.static_counters = {name: p.counters for name, p in self.params.items()}
        self.derived: dict = {}  # conv's float/abs-sum forms of the (read-only) weight codes

    def feed(self, node: Node, x: np.ndarray, ctx: NodeRun) -> Codes:
        np_ = self.node_plans[node.name]
        return Codes(quantize(x, np_.act, rounding=np_.rounding_at("input"), overflow=np_.overflow_at("input"),
                              counter=ctx.counter("input")), np_.act)

    def record(self, trace: Trace, node: Node, t: Codes, keep: bool) -> None:
        if keep:
            trace.codes[node.name] = _int_codes(t.codes)
            trace.formats[node.name] = t.fmt
            trace.values[node.name] = _values(t.codes, t.fmt)

    def run(self, x: Any, *, counters: bool = True, keep_values: bool = True) -> Trace:
        return execute(self, x, keep_values=keep_values, counters=counters)


def prepare(graph: Graph, plan: "Plan | str") -> FixedProgram:
    """The `FixedProgram` of `graph` under a full-integer `plan` (validated against the graph)."""
    plan = as_plan(plan)
    plan.validate(graph)
    if plan.mode is not Mode.FULL:
        raise PlanError(f"the fixed backend runs full-integer plans; a {plan.mode.value!r} plan runs on the "
                        f"{'float' if plan.mode is Mode.WEIGHTS else 'fp16'} backend (qsim.run chooses it)")
    return FixedProgram(graph, plan)


def run(graph: Graph, x: Any, plan: "Plan | str", *, counters: bool = True, keep_values: bool = True) -> Trace:
    """Run `graph` on `x` with every tensor an integer of `plan`'s formats (prepare + execute).

    To run one graph on many inputs, `prepare` once and call ``program.run(x)``.
    """
    return prepare(graph, plan).run(x, counters=counters, keep_values=keep_values)


__all__ = ["run", "prepare", "FixedProgram", "OP_KERNELS", "as_plan"]
