"""Merge a zero ``pad`` node (Keras ZeroPadding2D) into the conv that alone reads it.

MobileNetV2 pads before each stride-2 depthwise conv (``block_N_pad``, ``((0, 1), (0, 1))``
for even sizes) and runs the conv ``valid``; after this pass the conv carries the pads
itself, the form hardware such as the K210 KPU expects. Pads add up; a conv with
unresolved ``"same"`` pads is left alone.
"""
from __future__ import annotations

from qsim.graph.ir import Graph, Node
from qsim.graph.passes.base import GraphPass, sole_consumer


class FusePad(GraphPass):
    name = "fuse_pad"

    def match(self, graph: Graph, node: Node) -> bool:
        if node.op != "pad":
            return False
        conv = sole_consumer(graph, node.name)
        return (conv is not None and conv.op in ("conv2d", "depthwise_conv2d")
                and conv.attrs.get("pads") != "same")

    def rewrite(self, graph: Graph, node: Node) -> bool:
        conv = sole_consumer(graph, node.name)
        assert conv is not None
        old = tuple(int(p) for p in conv.attrs.get("pads", (0, 0, 0, 0)))
        conv.attrs["pads"] = tuple(a + int(b) for a, b in zip(old, node.attrs["pads"]))
        conv.inputs = [node.inputs[0] if src == node.name else src for src in conv.inputs]
        conv.attrs["fused"] = [node.name] + list(conv.attrs.get("fused", [conv.name]))
        graph.replace_nodes([n for n in graph.nodes if n is not node])
        graph.notes.append(f"fuse_pad: {node.name} {tuple(node.attrs['pads'])} merged into {conv.name} "
                           f"-> pads {conv.attrs['pads']}")
        return True
