"""Graph IR, Keras importer (h5py, no TensorFlow), shape inference, validation and passes."""
from qsim.graph.ir import OPS, Graph, Node, resolve_pads
from qsim.graph.shapes import count_macs, count_params, infer_shapes

__all__ = ["Graph", "Node", "OPS", "resolve_pads", "infer_shapes", "count_params", "count_macs"]
