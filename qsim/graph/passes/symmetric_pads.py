"""Rewrite asymmetric conv padding to the symmetric "full padding" the K210 needs (paper §V-D).

TensorFlow pads a stride-2 3×3 conv on an even input by (0, 1) (bottom/right only); the
KPU pads every side by k // 2. This pass sets each spatial axis of a conv/depthwise conv
whose pads are asymmetric (or still ``"same"`` with a stride > 1, size unknown) to ``((k_eff - 1) // 2, (k_eff - 1) // 2)``.
For a stride-2 3×3 conv on an even input the output size is unchanged but the sampling
grid moves by one pixel, so the numbers change: this is a different network, run only on
request (``load_model(..., symmetric_pads=True)``). Each rewrite is listed in
``graph.notes``, with a warning if a known output size changed.
"""
from __future__ import annotations

from qsim.graph.ir import Graph, Node
from qsim.graph.passes.base import GraphPass
from qsim.graph.shapes import infer_shapes


def _symmetric(node: Node) -> tuple[int, int, int, int]:
    kh, kw = node.weights["kernel"].shape[:2]
    dh, dw = node.attrs.get("dilation", (1, 1))
    ph, pw = ((kh - 1) * dh) // 2, ((kw - 1) * dw) // 2
    return (ph, ph, pw, pw)


class SymmetricPads(GraphPass):
    name = "symmetric_pads"

    def match(self, graph: Graph, node: Node) -> bool:
        if node.op not in ("conv2d", "depthwise_conv2d"):
            return False
        pads = node.attrs.get("pads", (0, 0, 0, 0))
        if pads == "same":
            # Stride 1 with an odd kernel: TF's "same" is already symmetric for every size.
            kh, kw = node.weights["kernel"].shape[:2]
            strides = tuple(node.attrs.get("strides", (1, 1)))
            return strides != (1, 1) or kh % 2 == 0 or kw % 2 == 0
        t, b, l, r = pads
        return (t != b or l != r) and tuple(pads) != _symmetric(node)

    def rewrite(self, graph: Graph, node: Node) -> bool:
        before_shape = infer_shapes(graph)[node.name]
        old = node.attrs.get("pads")
        node.attrs["pads"] = _symmetric(node)
        after_shape = infer_shapes(graph)[node.name]
        note = f"symmetric_pads: {node.name} pads {old} -> {node.attrs['pads']}"
        if None not in before_shape[:2] and before_shape != after_shape:
            note += f" (WARNING: output {before_shape[:2]} -> {after_shape[:2]})"
        graph.notes.append(note)
        return True
