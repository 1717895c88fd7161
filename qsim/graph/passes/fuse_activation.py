"""Fuse a plain ReLU / ReLU6 into the MAC node it reads (integer backends run it in the MAC's tail).

The pass only annotates: the MAC node gets ``attrs["fused_activation"] = relu_name`` and
the ReLU node ``attrs["fused_into"] = mac_name``; both nodes stay, so a `Trace` still
holds both tensors by their Keras names. A backend that fuses computes the ReLU's codes in
the MAC's requantization pass (same codes as running it separately: `qsim.kernels.tail`)
and the ReLU's kernel hands them on; a backend that does not fuse ignores the attributes.

Matches a MAC whose only reader is a ``relu`` without ``negative_slope`` or ``threshold``
(a MAC that is also a model output still fuses: its pre-activation codes are kept).
"""
from __future__ import annotations

from qsim.graph.ir import Graph, Node
from qsim.graph.ops import MAC_OPS, Op
from qsim.graph.passes.base import GraphPass


def _plain_relu(node: Node) -> bool:
    return node.op == Op.RELU and not node.attrs.get("negative_slope", 0.0) and not node.attrs.get("threshold", 0.0)


class FuseActivation(GraphPass):
    name = "fuse_activation"

    def match(self, graph: Graph, node: Node) -> bool:
        if node.op not in MAC_OPS or "fused_activation" in node.attrs:
            return False
        readers = graph.consumers(node.name)
        return len(readers) == 1 and _plain_relu(readers[0]) and "fused_into" not in readers[0].attrs

    def rewrite(self, graph: Graph, node: Node) -> bool:
        relu = graph.consumers(node.name)[0]
        mac = Node(node.name, node.op, list(node.inputs), {**node.attrs, "fused_activation": relu.name},
                   node.weights, node.source_class)
        act = Node(relu.name, relu.op, list(relu.inputs), {**relu.attrs, "fused_into": node.name},
                   relu.weights, relu.source_class)
        graph.replace_nodes([mac if n is node else act if n is relu else n for n in graph.nodes])
        graph.notes.append(f"fuse_activation: {relu.name} runs in the requantization of {node.name}")
        return True
