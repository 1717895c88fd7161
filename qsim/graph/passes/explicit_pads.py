"""Resolve ``pads="same"`` to explicit (top, bottom, left, right) where the input size is known.

TensorFlow's rule (see `qsim.graph.ir.resolve_pads`) puts the odd pixel at the bottom/right,
e.g. a 3×3 stride-2 conv on an even input pads (0, 1, 0, 1). With an unknown input size
(``Input((None, None, 3))``) the attribute stays ``"same"`` and executors resolve it per image.
"""
from __future__ import annotations

from qsim.graph.ir import Graph, Node, resolve_pads
from qsim.graph.passes.base import GraphPass
from qsim.graph.shapes import infer_shapes


class ExplicitPads(GraphPass):
    name = "explicit_pads"

    def match(self, graph: Graph, node: Node) -> bool:
        if node.op not in ("conv2d", "depthwise_conv2d") or node.attrs.get("pads") != "same":
            return False
        h, w, _ = infer_shapes(graph)[node.inputs[0]]
        return h is not None and w is not None

    def rewrite(self, graph: Graph, node: Node) -> bool:
        h, w, _ = infer_shapes(graph)[node.inputs[0]]
        pads = resolve_pads("same", (h, w), node.weights["kernel"].shape[:2],
                            tuple(node.attrs.get("strides", (1, 1))), tuple(node.attrs.get("dilation", (1, 1))))
        node.attrs["pads"] = pads
        graph.notes.append(f"explicit_pads: {node.name} 'same' on {h}x{w} -> pads {pads}")
        return True
