"""`validate(graph)`: the checks run after import and after every pass.

* every weight array is finite: NaN/Inf → `ModelError` naming the layer, the array and
  how many values are bad;
* weight shapes agree with each other (conv kernel rank 4, dense kernel rank 2, bias
  length = output channels, BatchNorm vectors of one length, rescale scale/offset of one
  length, positive strides/dilations/pool sizes, non-negative pads);
* tensor shapes are consistent through the graph (`infer_shapes` at the declared size).
"""
from __future__ import annotations

import numpy as np

from qsim.errors import ModelError
from qsim.graph.ir import Graph, Node
from qsim.graph.shapes import infer_shapes


def _where(graph: Graph, node: Node) -> str:
    src = f"{graph.source}: " if graph.source else ""
    cls = f", Keras {node.source_class}" if node.source_class else ""
    return f"{src}layer '{node.name}' ({node.op}{cls})"


def check_weights(graph: Graph, node: Node) -> None:
    for key, arr in node.weights.items():
        if not np.issubdtype(np.asarray(arr).dtype, np.floating):
            raise ModelError(f"{_where(graph, node)}: weight {key!r} has dtype {arr.dtype}, expected float")
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            n_nan = int(np.count_nonzero(np.isnan(arr)))
            raise ModelError(f"{_where(graph, node)}: weight {key!r} {arr.shape} has {bad} non-finite "
                             f"value(s) ({n_nan} NaN, {bad - n_nan} Inf)")
    if node.op in ("conv2d", "depthwise_conv2d"):
        kernel = node.weights.get("kernel")
        if kernel is None or kernel.ndim != 4:
            raise ModelError(f"{_where(graph, node)}: kernel must be 4-D (KH, KW, Cin, Cout|mult)")
        cout = kernel.shape[3] * (kernel.shape[2] if node.op == "depthwise_conv2d" else 1)
        bias = node.weights.get("bias")
        if bias is not None and bias.shape != (cout,):
            raise ModelError(f"{_where(graph, node)}: bias shape {bias.shape}, expected ({cout},)")
        for key in ("strides", "dilation"):
            if any(int(v) < 1 for v in node.attrs.get(key, (1, 1))):
                raise ModelError(f"{_where(graph, node)}: {key}={node.attrs[key]} must be >= 1")
        pads = node.attrs.get("pads", (0, 0, 0, 0))
        if pads != "same" and (len(pads) != 4 or any(int(p) < 0 for p in pads)):
            raise ModelError(f"{_where(graph, node)}: pads={pads!r}, expected 4 values >= 0 or 'same'")
    if node.op == "batch_norm":
        shapes = {k: node.weights[k].shape for k in ("gamma", "beta", "mean", "variance")}
        if len(set(shapes.values())) != 1:
            raise ModelError(f"{_where(graph, node)}: BatchNorm vectors differ in shape: {shapes}")
        if np.any(node.weights["variance"] + node.attrs.get("epsilon", 1e-3) <= 0):
            raise ModelError(f"{_where(graph, node)}: BatchNorm variance + epsilon <= 0")
    if node.op == "pad" and any(int(p) < 0 for p in node.attrs["pads"]):
        raise ModelError(f"{_where(graph, node)}: negative pads {node.attrs['pads']}")
    if node.op == "dense":
        kernel, bias = node.weights.get("kernel"), node.weights.get("bias")
        if kernel is None or kernel.ndim != 2:
            raise ModelError(f"{_where(graph, node)}: dense kernel must be 2-D (Cin, Cout)")
        if bias is not None and bias.shape != (kernel.shape[1],):
            raise ModelError(f"{_where(graph, node)}: bias shape {bias.shape}, expected ({kernel.shape[1]},)")
    if node.op == "rescale":
        shapes = {k: np.shape(node.weights.get(k)) for k in ("scale", "offset")}
        if len(set(shapes.values())) != 1 or len(shapes["scale"]) != 1:
            raise ModelError(f"{_where(graph, node)}: rescale needs scale and offset of one shape (C,), got {shapes}")
    if node.op in ("avg_pool", "max_pool"):
        for key in ("pool_size", "strides"):
            value = node.attrs.get(key)
            if not isinstance(value, (list, tuple)) or len(value) != 2 or any(int(v) < 1 for v in value):
                raise ModelError(f"{_where(graph, node)}: {key}={value!r}, expected two values >= 1")
        pads = node.attrs.get("pads", (0, 0, 0, 0))
        if pads != "same" and (len(pads) != 4 or any(int(p) < 0 for p in pads)):
            raise ModelError(f"{_where(graph, node)}: pads={pads!r}, expected 4 values >= 0 or 'same'")


def validate(graph: Graph) -> Graph:
    """Raise `ModelError` if the graph is not executable; return it unchanged otherwise."""
    graph.check_order()
    if not graph.inputs:
        raise ModelError(f"{graph.source or graph.name}: the graph has no input")
    for node in graph:
        check_weights(graph, node)
    try:
        infer_shapes(graph)
    except ModelError as exc:
        raise ModelError(f"{graph.source or graph.name}: {exc}") from None
    return graph
