"""The float executor: runs any supported graph in float32 (default) or float64.

It is the reference the quantized executors are compared with, and it matches TensorFlow
layer by layer (tests/tf/test_float_vs_tf.py: max |err| <= 1e-4 · max |activation| in
float32). Nothing is rounded except by the float dtype itself; a 3-D HWC image is
accepted as a batch of one, and inputs are checked (rank, channels, fixed sizes, float
dtype, finite values) before anything runs.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from qsim.errors import InputError, node_context
from qsim.graph.ir import Graph, Node
from qsim.kernels import float_ops
from qsim.trace import Trace


def _conv(node: Node, xs: list[np.ndarray]) -> np.ndarray:
    fn = float_ops.conv2d if node.op == "conv2d" else float_ops.depthwise_conv2d
    return fn(xs[0], node.weights["kernel"], node.weights.get("bias"),
              tuple(node.attrs.get("strides", (1, 1))), node.attrs.get("pads", (0, 0, 0, 0)),
              tuple(node.attrs.get("dilation", (1, 1))))


def _upsample(node: Node, xs: list[np.ndarray]) -> np.ndarray:
    size = tuple(node.attrs["size"])
    if node.attrs.get("interpolation", "nearest") == "bilinear":
        return float_ops.upsample_bilinear(xs[0], size)
    return float_ops.upsample_nearest(xs[0], size)


# op -> how to compute it from the node and its input arrays (one literal: grep finds it)
OP_KERNELS: dict[str, Callable[[Node, list[np.ndarray]], np.ndarray]] = {
    "conv2d": _conv,
    "depthwise_conv2d": _conv,
    "batch_norm": lambda n, xs: float_ops.batch_norm(
        xs[0], n.weights["gamma"], n.weights["beta"], n.weights["mean"], n.weights["variance"],
        n.attrs.get("epsilon", 1e-3)),
    "relu": lambda n, xs: float_ops.relu(
        xs[0], n.attrs.get("max_value"), n.attrs.get("negative_slope", 0.0), n.attrs.get("threshold", 0.0)),
    "sigmoid": lambda n, xs: float_ops.sigmoid(xs[0]),
    "pad": lambda n, xs: float_ops.pad(xs[0], tuple(n.attrs["pads"])),
    "add": lambda n, xs: float_ops.add(*xs),
    "concat": lambda n, xs: float_ops.concat(*xs),
    "upsample": _upsample,
    "identity": lambda n, xs: xs[0],
}


def check_input(node: Node, x: Any, dtype: Any) -> np.ndarray:
    """``x`` as an (N, H, W, C) array of ``dtype``, or `InputError` naming the expected shape."""
    h, w, c = node.attrs["shape"]
    want = f"(N, {h or 'H'}, {w or 'W'}, {c}) or ({h or 'H'}, {w or 'W'}, {c})"
    arr = np.asarray(x)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise InputError(f"input '{node.name}': got shape {np.shape(x)}, expected {want} (NHWC)")
    if arr.shape[3] != c:
        raise InputError(f"input '{node.name}': got {arr.shape[3]} channels (shape {np.shape(x)}), "
                         f"expected {want}")
    if (h is not None and arr.shape[1] != h) or (w is not None and arr.shape[2] != w):
        raise InputError(f"input '{node.name}': got {arr.shape[1]}x{arr.shape[2]}, the model is fixed at "
                         f"{h}x{w}: expected {want}")
    if arr.shape[0] < 1 or arr.shape[1] < 1 or arr.shape[2] < 1:
        raise InputError(f"input '{node.name}': empty input of shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"input '{node.name}': dtype {arr.dtype}; the float executor takes a float image "
                         "already preprocessed for the model (e.g. scaled to [-1, 1])")
    arr = arr.astype(dtype, copy=False)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"input '{node.name}': {int(np.sum(~np.isfinite(arr)))} non-finite value(s)")
    return np.ascontiguousarray(arr)


def bind_inputs(graph: Graph, x: Any) -> dict[str, Any]:
    """Map input-node names to the caller's arrays (one array, or a dict for several inputs)."""
    inputs = graph.inputs
    if isinstance(x, dict):
        missing = [n.name for n in inputs if n.name not in x]
        extra = [k for k in x if k not in {n.name for n in inputs}]
        if missing or extra:
            raise InputError(f"inputs: missing {missing}, unknown {extra}; the graph takes "
                             f"{[n.name for n in inputs]}")
        return dict(x)
    if len(inputs) != 1:
        raise InputError(f"the graph takes {len(inputs)} inputs {[n.name for n in inputs]}: pass a dict")
    return {inputs[0].name: x}


def run(graph: Graph, x: Any, dtype: Any = np.float32, keep_values: bool = True) -> Trace:
    """Run ``graph`` on ``x`` in float.

    Args:
        graph: a `Graph` (e.g. from `qsim.load_model`).
        x: NHWC float image batch (a 3-D HWC image is a batch of one), or {input name: array}.
        dtype: np.float32 (default, TensorFlow's precision) or np.float64.
        keep_values: keep every node's output in ``Trace.values`` (False: only the outputs,
            to save memory on large images).

    Returns:
        `Trace` with ``executor="float"``, ``values`` (every node, graph order) and ``outputs``.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise InputError(f"float executor dtype {dtype}: use float32 or float64")
    feeds = bind_inputs(graph, x)
    values: dict[str, np.ndarray] = {}
    remaining = {n.name: 0 for n in graph}
    for node in graph:
        for src in node.inputs:
            remaining[src] += 1
    for out in graph.outputs:
        remaining[out] += 1
    trace = Trace("float")
    for node in graph:
        if node.op == "input":
            values[node.name] = check_input(node, feeds[node.name], dtype)
        else:
            with node_context(node.name, node.op):
                values[node.name] = OP_KERNELS[node.op](node, [values[i] for i in node.inputs])
        if keep_values:
            trace.values[node.name] = values[node.name]
        else:  # free tensors nobody reads any more (and dead ends at once)
            for src in node.inputs:
                remaining[src] -= 1
                if remaining[src] == 0:
                    del values[src]
            if remaining[node.name] == 0:
                del values[node.name]
    for out in graph.outputs:
        trace.outputs[out] = values[out]
    return trace
