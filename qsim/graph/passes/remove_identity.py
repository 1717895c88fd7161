"""Remove ``identity`` nodes (Dropout and friends, linear Activation): readers read its input.

Note: if the identity is a graph output, the output becomes its input's name.
"""
from __future__ import annotations

from qsim.graph.ir import Graph, Node
from qsim.graph.passes.base import GraphPass, rename_input


class RemoveIdentity(GraphPass):
    name = "remove_identity"

    def match(self, graph: Graph, node: Node) -> bool:
        return node.op == "identity"

    def rewrite(self, graph: Graph, node: Node) -> bool:
        src = node.inputs[0]
        rename_input(graph, node.name, src)
        graph.replace_nodes([n for n in graph.nodes if n is not node])
        graph.notes.append(f"remove_identity: removed {node.name} ({node.source_class or 'identity'})")
        return True
