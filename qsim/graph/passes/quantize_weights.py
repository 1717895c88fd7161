"""Weight and bias quantization of MAC nodes, and the weights-only graph (the paper's Table II).

`quantize_params(graph, plan)` quantizes every MAC node's kernel and bias once, with the
plan's ``weights``/``bias`` formats and those sites' rounding and overflow modes, counting
overflow (`QuantizedParams`). An unfolded ``batch_norm`` is a 1x1 depthwise conv: scale
``gamma / sqrt(var + eps)``, bias ``beta - mean * scale``, computed in float64; a
``rescale`` is a 1x1 depthwise conv of kernel ``scale`` and bias ``offset``; a ``dense``
has its (Cin, Cout) kernel (`mac_params`).

`weights_only_graph(graph, plan, params)` is the graph with every MAC's parameters
replaced by their dequantized codes (float32; an unfolded batch_norm becomes the
``rescale`` of its dequantized scale and offset): run by the float backend, it is the
paper's protocol ("converted back to a 32-bits floating point to simulate the network").
"""
from __future__ import annotations

import numpy as np

from qsim.errors import ModelError, node_context
from qsim.fixed.cast import dequantize, quantize
from qsim.fixed.counters import OverflowCounter
from qsim.graph.ir import Graph, Node
from qsim.graph.ops import MAC_OPS, Op


def mac_params(node: Node) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(kernel, bias or None, depthwise?) in float64.

    conv2d: (KH, KW, Cin, Cout); depthwise_conv2d: (KH, KW, C, mult); dense: (Cin, Cout);
    an unfolded batch_norm and a rescale: a 1x1 depthwise kernel (1, 1, C, 1) and bias (C,).
    """
    for key, value in node.weights.items():
        arr = np.asarray(value)
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ModelError(f"node '{node.name}': weight '{key}' has {int(np.sum(~np.isfinite(arr)))} "
                             "non-finite value(s)")
    if node.op == Op.BATCH_NORM:
        w = {k: np.asarray(node.weights[k], dtype=np.float64) for k in ("gamma", "beta", "mean", "variance")}
        scale = w["gamma"] / np.sqrt(w["variance"] + float(node.attrs.get("epsilon", 1e-3)))
        return scale.reshape(1, 1, -1, 1), w["beta"] - w["mean"] * scale, True
    if node.op == Op.RESCALE:
        scale = np.asarray(node.weights["scale"], dtype=np.float64)
        return scale.reshape(1, 1, -1, 1), np.asarray(node.weights["offset"], dtype=np.float64), True
    kernel = np.asarray(node.weights["kernel"], dtype=np.float64)
    bias = node.weights.get("bias")
    return kernel, None if bias is None else np.asarray(bias, dtype=np.float64), node.op == Op.DEPTHWISE_CONV2D


class QuantizedParams:
    """Weight and bias codes of one MAC node (read-only), and the counters of quantizing them."""

    def __init__(self, node: Node, node_plan):
        kernel, bias, depthwise = mac_params(node)
        self.depthwise = depthwise
        self.counters = {"weights": OverflowCounter(f"{node.name}/weights")}
        self.kernel = quantize(kernel, node_plan.weights, rounding=node_plan.rounding_at("weights"),
                               overflow=node_plan.overflow_at("weights"), counter=self.counters["weights"])
        self.kernel.setflags(write=False)  # read-only: kernels may keep derived forms of it
        # the kernel as the conv kernel computes with it: a dense (Cin, Cout) is a 1x1 conv
        self.conv_kernel = self.kernel if self.kernel.ndim == 4 else self.kernel.reshape((1, 1) + self.kernel.shape)
        self.bias = None
        if bias is not None:
            self.counters["bias"] = OverflowCounter(f"{node.name}/bias")
            self.bias = quantize(bias, node_plan.bias, rounding=node_plan.rounding_at("bias"),
                                 overflow=node_plan.overflow_at("bias"), counter=self.counters["bias"])
            self.bias.setflags(write=False)


def quantize_params(graph: Graph, plan) -> dict[str, QuantizedParams]:
    """MAC node name -> its `QuantizedParams` under `plan`."""
    params = {}
    for node in graph:
        if node.op in MAC_OPS:
            with node_context(node.name, node.op):
                params[node.name] = QuantizedParams(node, plan.for_node(node.name))
    return params


def weights_only_graph(graph: Graph, plan, params: dict[str, QuantizedParams]) -> Graph:
    """A new graph whose MAC parameters are the dequantized codes (float32); see module doc."""
    nodes = []
    for node in graph:
        if node.name in params:
            p, node_plan = params[node.name], plan.for_node(node.name)
            weights = {"kernel": dequantize(p.kernel, node_plan.weights).astype(np.float32)}
            if p.bias is not None:
                weights["bias"] = dequantize(p.bias, node_plan.bias).astype(np.float32)
            if node.op in (Op.RESCALE, Op.BATCH_NORM):  # per channel, any rank: scale (C,), offset (C,)
                weights = {"scale": weights["kernel"].reshape(-1),
                           "offset": weights.get("bias", np.zeros(weights["kernel"].size, np.float32))}
                node = Node(node.name, Op.RESCALE.value, list(node.inputs), {}, weights, node.source_class)
            else:
                node = Node(node.name, node.op, list(node.inputs), dict(node.attrs),
                            {**node.weights, **weights}, node.source_class)
        nodes.append(node)
    out = Graph(nodes, list(graph.outputs), name=graph.name, source=graph.source, notes=list(graph.notes))
    out.notes.append(f"quantize_weights: {len(params)} MAC node(s) hold dequantized {plan.describe()} codes")
    return out
