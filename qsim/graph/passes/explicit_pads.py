"""Resolve ``pads="same"`` to explicit (top, bottom, left, right) where the input size is known.

TensorFlow's rule (see `qsim.graph.ir.resolve_pads`) puts the odd pixel at the bottom/right,
e.g. a 3×3 stride-2 conv on an even input pads (0, 1, 0, 1). With an unknown input size
(``Input((None, None, 3))``) the attribute stays ``"same"`` and executors resolve it per image.
Pools (``avg_pool``, ``max_pool``) are resolved the same way with their ``pool_size`` as
the window; their padded positions still do not count (see `qsim.graph.ir`).
"""
from __future__ import annotations

from qsim.graph.ir import Graph, Node, resolve_pads
from qsim.graph.ops import Op
from qsim.graph.passes.base import GraphPass
from qsim.graph.shapes import infer_shapes

WINDOW_OPS = (Op.CONV2D, Op.DEPTHWISE_CONV2D, Op.AVG_POOL, Op.MAX_POOL)


class ExplicitPads(GraphPass):
    name = "explicit_pads"

    def match(self, graph: Graph, node: Node) -> bool:
        if node.op not in WINDOW_OPS or node.attrs.get("pads") != "same":
            return False
        h, w, _ = infer_shapes(graph)[node.inputs[0]]
        return h is not None and w is not None

    def rewrite(self, graph: Graph, node: Node) -> bool:
        h, w, _ = infer_shapes(graph)[node.inputs[0]]
        window = node.attrs["pool_size"] if "pool_size" in node.attrs else node.weights["kernel"].shape[:2]
        pads = resolve_pads("same", (h, w), tuple(window),
                            tuple(node.attrs.get("strides", (1, 1))), tuple(node.attrs.get("dilation", (1, 1))))
        node.attrs["pads"] = pads
        graph.notes.append(f"explicit_pads: {node.name} 'same' on {h}x{w} -> pads {pads}")
        return True
