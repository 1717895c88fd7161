"""`GraphPass`: ``match(graph, node)`` says whether ``rewrite(graph, node)`` applies there;
``rewrite`` edits the graph (through `Graph.replace_nodes`), appends a line to
``graph.notes`` and returns whether anything changed."""
from __future__ import annotations

from qsim.graph.ir import Graph, Node


class GraphPass:
    name = "pass"

    def match(self, graph: Graph, node: Node) -> bool:
        raise NotImplementedError

    def rewrite(self, graph: Graph, node: Node) -> bool:
        raise NotImplementedError


def rename_input(graph: Graph, old: str, new: str) -> None:
    """Make every reader of ``old`` read ``new`` instead (outputs too)."""
    for node in graph:
        node.inputs = [new if src == old else src for src in node.inputs]
    if old in graph.outputs:
        graph.outputs = [new if o == old else o for o in graph.outputs]


def sole_consumer(graph: Graph, name: str) -> Node | None:
    """The only node reading ``name``, if exactly one does and ``name`` is not a graph output."""
    consumers = graph.consumers(name)
    if len(consumers) != 1 or name in graph.outputs:
        return None
    return consumers[0]
