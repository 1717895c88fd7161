"""Fold an inference BatchNorm into the conv/depthwise conv/dense that feeds it.

BN(y) = (y - mean) · s + beta with s = gamma / sqrt(variance + epsilon), so
conv(x; K, b) followed by BN equals conv(x; K · s, (b - mean) · s + beta), s applied per
output channel (depthwise: channel ``c * mult + m``). The folded values are computed in
float64 and stored as float32.

The merged node takes the BatchNorm's name (it produces the BN's output tensor, so
readers and TensorFlow traces still match by name) and lists the layers it replaces in
``attrs["fused"]``.

Note: only a BN whose input conv has no other reader is folded; any other BN stays a
``batch_norm`` node (the float executor runs it; integer executors may refuse it).
"""
from __future__ import annotations

import numpy as np

from qsim.graph.ir import Graph, Node
from qsim.graph.passes.base import GraphPass, sole_consumer


def fold(conv: Node, bn: Node) -> dict[str, np.ndarray]:
    """The folded ``kernel`` and ``bias`` (float32) of ``conv`` followed by ``bn``."""
    w = {k: v.astype(np.float64) for k, v in bn.weights.items()}
    scale = w["gamma"] / np.sqrt(w["variance"] + float(bn.attrs.get("epsilon", 1e-3)))
    kernel = conv.weights["kernel"].astype(np.float64)
    cout = scale.shape[0]
    bias = conv.weights.get("bias", np.zeros(cout)).astype(np.float64)
    if conv.op in ("conv2d", "dense"):  # (KH, KW, Cin, Cout) or (Cin, Cout): scale the last axis
        folded = kernel * scale
    else:  # depthwise (KH, KW, C, mult): output channel c * mult + m = flattened last two axes
        folded = (kernel.reshape(kernel.shape[:2] + (cout,)) * scale).reshape(kernel.shape)
    return {"kernel": folded.astype(np.float32),
            "bias": ((bias - w["mean"]) * scale + w["beta"]).astype(np.float32)}


class FoldBatchNorm(GraphPass):
    name = "fold_bn"

    def match(self, graph: Graph, node: Node) -> bool:
        if node.op != "batch_norm":
            return False
        conv = graph[node.inputs[0]]
        return conv.op in ("conv2d", "depthwise_conv2d", "dense") and sole_consumer(graph, conv.name) is node

    def rewrite(self, graph: Graph, node: Node) -> bool:
        conv = graph[node.inputs[0]]
        merged = Node(node.name, conv.op, list(conv.inputs), dict(conv.attrs), fold(conv, node),
                      conv.source_class)
        merged.attrs["fused"] = list(conv.attrs.get("fused", [conv.name])) + [node.name]
        nodes = [merged if n is node else n for n in graph.nodes if n is not conv]
        graph.replace_nodes(nodes)
        graph.notes.append(f"fold_bn: folded {node.name} into {conv.name} (merged node named {node.name})")
        return True
