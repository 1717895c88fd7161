"""Graph passes, one per module, run in the order of `DEFAULT_PASSES`.

`run_passes` applies each pass wherever it matches until nothing changes, then runs
`qsim.graph.validate.validate`, so a pass that breaks the graph is caught at once.

==================  ==========================================================  ========
pass                what                                                        default
==================  ==========================================================  ========
remove_identity     drop Dropout & co. / linear Activation                      yes
fold_bn             BatchNorm folded into the conv before it (named after BN)   yes (``fold_bn=False`` keeps BNs)
explicit_pads       ``"same"`` → explicit pads where the input size is known     yes
fuse_pad            ZeroPadding2D merged into the conv reading it               yes
symmetric_pads      asymmetric pads → symmetric k//2 ("full padding", K210)     no
fuse_activation     mark a ReLU/ReLU6 to run in the MAC before it (integer)     no (the fixed backend runs it)
==================  ==========================================================  ========

Passes never modify the caller's graph: `run_passes` works on a copy (nodes copied, weight
arrays shared) and returns it.

Weight quantization for the weights-only protocol is `quantize_weights` (it needs a plan,
so it is a function, not a matching pass).
"""
from __future__ import annotations

from qsim.errors import ModelError
from qsim.graph.ir import Graph
from qsim.graph.passes.base import GraphPass
from qsim.graph.passes.explicit_pads import ExplicitPads
from qsim.graph.passes.fold_bn import FoldBatchNorm
from qsim.graph.passes.fuse_activation import FuseActivation
from qsim.graph.passes.fuse_pad import FusePad
from qsim.graph.passes.remove_identity import RemoveIdentity
from qsim.graph.passes.symmetric_pads import SymmetricPads
from qsim.graph.validate import validate

# name -> pass; the order of this literal is the order passes run in.
PASSES: dict[str, GraphPass] = {
    "remove_identity": RemoveIdentity(),
    "fold_bn": FoldBatchNorm(),
    "explicit_pads": ExplicitPads(),
    "fuse_pad": FusePad(),
    "symmetric_pads": SymmetricPads(),
    "fuse_activation": FuseActivation(),
}
DEFAULT_PASSES = ("remove_identity", "fold_bn", "explicit_pads", "fuse_pad")


def run_pass(graph: Graph, graph_pass: GraphPass) -> bool:
    """Apply one pass wherever it matches, to a fixed point; True if the graph changed."""
    changed_any = False
    changed = True
    while changed:
        changed = False
        for node in list(graph.nodes):
            if node.name in graph and graph[node.name] is node and graph_pass.match(graph, node):
                if graph_pass.rewrite(graph, node):
                    changed = changed_any = True
    return changed_any


def run_passes(graph: Graph, names=DEFAULT_PASSES) -> Graph:
    """Run the named passes (in `PASSES` order) on a copy of ``graph``, validating after each."""
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise ModelError(f"unknown graph pass(es) {unknown}; known: {', '.join(PASSES)}")
    graph = graph.copy()
    for name, graph_pass in PASSES.items():
        if name in names:
            run_pass(graph, graph_pass)
            validate(graph)
    return graph


__all__ = ["PASSES", "DEFAULT_PASSES", "GraphPass", "run_pass", "run_passes"]
