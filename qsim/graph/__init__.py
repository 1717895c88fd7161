"""Graph IR, importers and passes."""
from qsim.graph.ir import OPS, Graph, Node, resolve_pads

__all__ = ["Graph", "Node", "OPS", "resolve_pads"]
