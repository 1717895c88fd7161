"""The float backend: runs any supported graph in float32 (default) or float64.

It is the reference the quantized backends are compared with, and it matches TensorFlow
layer by layer (tests/tf/test_float_vs_tf.py: max |err| <= 1e-4 · max |activation| in
float32). Nothing is rounded except by the float dtype itself. The weights-only protocol
(`qsim.graph.passes.quantize_weights`) and fp16 with float activations run through it too,
on their rewritten graphs (`FloatProgram`'s ``executor`` and ``static_counters`` say so).

>>> import numpy as np
>>> from qsim.graph.ir import Graph, Node
>>> g = Graph([Node("x", "input", attrs={"shape": (None, None, 1)}),
...            Node("r", "relu", ["x"], {"max_value": 6.0})], ["r"])
>>> run(g, np.array([[[-1.0], [7.0]]], np.float32)).outputs["r"].ravel().tolist()
[0.0, 6.0]
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from qsim.errors import InputError
from qsim.fixed.counters import OverflowCounter
from qsim.graph.ir import Graph, Node
from qsim.graph.ops import Op
from qsim.graph.passes import run_passes
from qsim.kernels import float_layers, float_ops
from qsim.runtime.walker import execute
from qsim.trace import Trace


def _conv(prog, node: Node, xs: list[np.ndarray], ctx) -> np.ndarray:
    fn = float_ops.conv2d if node.op == Op.CONV2D else float_ops.depthwise_conv2d
    args = (xs[0], node.weights["kernel"], node.weights.get("bias"), tuple(node.attrs.get("strides", (1, 1))),
            node.attrs.get("pads", (0, 0, 0, 0)), tuple(node.attrs.get("dilation", (1, 1))))
    fused = node.attrs.get("fused_activation") if prog is not None and prog.fuses_activations else None
    if fused is None:
        return fn(*args)
    # the ReLU runs in the bias pass (same bits as float_ops.relu after it); its kernel hands
    # the result on; the conv's own tensor is made only when the trace keeps it
    res = fn(*args, relu=True, relu_max=prog.graph[fused].attrs.get("max_value"), keep_pre=ctx.keep)
    post, pre = res if ctx.keep else (res, None)
    ctx.state[fused] = post
    return pre


def _relu(prog, node: Node, xs: list[np.ndarray], ctx) -> np.ndarray:
    if ctx is not None and node.attrs.get("fused_into") is not None and node.name in ctx.state:
        return ctx.state.pop(node.name)  # computed by the conv before it
    return float_ops.relu(xs[0], node.attrs.get("max_value"), node.attrs.get("negative_slope", 0.0),
                          node.attrs.get("threshold", 0.0))


def _upsample(prog, node: Node, xs: list[np.ndarray], ctx) -> np.ndarray:
    size = tuple(node.attrs["size"])
    if node.attrs.get("interpolation", "nearest") == "bilinear":
        return float_ops.upsample_bilinear(xs[0], size)
    return float_ops.upsample_nearest(xs[0], size)


# op -> kernel(program, node, input arrays, ctx) -> array (one literal: grep finds it)
OP_KERNELS = {
    Op.CONV2D: _conv,
    Op.DEPTHWISE_CONV2D: _conv,
    Op.BATCH_NORM: lambda p, n, xs, ctx: float_ops.batch_norm(
        xs[0], n.weights["gamma"], n.weights["beta"], n.weights["mean"], n.weights["variance"],
        n.attrs.get("epsilon", 1e-3)),
    Op.RELU: _relu,
    Op.SIGMOID: lambda p, n, xs, ctx: float_ops.sigmoid(xs[0]),
    Op.PAD: lambda p, n, xs, ctx: float_ops.pad(xs[0], tuple(n.attrs["pads"])),
    Op.ADD: lambda p, n, xs, ctx: float_ops.add(*xs),
    Op.CONCAT: lambda p, n, xs, ctx: float_ops.concat(*xs),
    Op.UPSAMPLE: _upsample,
    Op.IDENTITY: lambda p, n, xs, ctx: xs[0],
    Op.DENSE: lambda p, n, xs, ctx: float_layers.dense(xs[0], n.weights["kernel"], n.weights.get("bias")),
    Op.RESCALE: lambda p, n, xs, ctx: float_layers.rescale(xs[0], n.weights["scale"], n.weights["offset"]),
    Op.TANH: lambda p, n, xs, ctx: float_layers.tanh(xs[0]),
    Op.HARD_SIGMOID: lambda p, n, xs, ctx: float_layers.hard_sigmoid(
        xs[0], n.attrs.get("slope", 1 / 6), n.attrs.get("offset", 0.5)),
    Op.HARD_SWISH: lambda p, n, xs, ctx: float_layers.hard_swish(xs[0]),
    Op.SWISH: lambda p, n, xs, ctx: float_layers.swish(xs[0]),
    Op.SOFTMAX: lambda p, n, xs, ctx: float_layers.softmax(xs[0], n.attrs.get("axis", -1)),
    Op.MULTIPLY: lambda p, n, xs, ctx: float_layers.multiply(*xs),
    Op.AVG_POOL: lambda p, n, xs, ctx: float_layers.avg_pool(
        xs[0], tuple(n.attrs["pool_size"]), tuple(n.attrs["strides"]), n.attrs.get("pads", (0, 0, 0, 0))),
    Op.MAX_POOL: lambda p, n, xs, ctx: float_layers.max_pool(
        xs[0], tuple(n.attrs["pool_size"]), tuple(n.attrs["strides"]), n.attrs.get("pads", (0, 0, 0, 0))),
    Op.GLOBAL_AVG_POOL: lambda p, n, xs, ctx: float_layers.global_avg_pool(xs[0], n.attrs.get("keepdims", False)),
    Op.GLOBAL_MAX_POOL: lambda p, n, xs, ctx: float_layers.global_max_pool(xs[0], n.attrs.get("keepdims", False)),
    Op.RESHAPE: lambda p, n, xs, ctx: float_layers.reshape(xs[0], n.attrs["shape"]),
}


def float_op(node: Node, xs: list[np.ndarray]) -> np.ndarray:
    """One node's float computation outside a run (the K210 backend's CPU ops use it)."""
    return OP_KERNELS[node.op](None, node, xs, None)


class FloatProgram:
    """A graph run in float (see module doc); ``static_counters`` of a rewritten graph."""

    ops = OP_KERNELS
    counts_every_node = False
    # plain ReLUs run in their conv's bias pass (the fuse_activation pass marks them); a
    # program whose kernels round every node's output (fp16) keeps them apart
    fuses_activations = True

    def __init__(self, graph: Graph, dtype: Any = np.float32, executor: str = "float",
                 static_counters: Mapping[str, Mapping[str, OverflowCounter]] | None = None):
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise InputError(f"float executor dtype {dtype}: use float32 or float64")
        if self.fuses_activations:
            graph = run_passes(graph, ("fuse_activation",))  # a new graph: the caller's is unchanged
        self.graph, self.input_dtype, self.executor = graph, dtype, executor
        self.static_counters = dict(static_counters or {})

    def feed(self, node: Node, x: np.ndarray, ctx) -> np.ndarray:
        return x

    def record(self, trace: Trace, node: Node, value: np.ndarray, keep: bool) -> None:
        if keep:
            trace.values[node.name] = value

    def run(self, x: Any, *, counters: bool = True, keep_values: bool = True) -> Trace:
        return execute(self, x, keep_values=keep_values, counters=counters)


def prepare(graph: Graph, plan: Any = None, *, dtype: Any = np.float32) -> FloatProgram:
    """The float program of `graph` (`plan` is not used: float has no formats)."""
    return FloatProgram(graph, dtype)


def run(graph: Graph, x: Any, dtype: Any = np.float32, keep_values: bool = True) -> Trace:
    """Run ``graph`` on ``x`` in float.

    Args:
        graph: a `Graph` (e.g. from `qsim.load_model`).
        x: batch-first float array (NHWC images; (N, C) features...; one sample without the
            batch axis is a batch of one), or {input name: array}.
        dtype: np.float32 (default, TensorFlow's precision) or np.float64.
        keep_values: keep every node's output in ``Trace.values`` (False: only the outputs).

    Returns:
        `Trace` with ``executor="float"``, ``values`` (every node, graph order) and ``outputs``.
    """
    return FloatProgram(graph, dtype).run(x, keep_values=keep_values)
