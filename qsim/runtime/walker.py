"""The one graph walker: bind inputs, check them, run each node's kernel, free, trace.

Every backend's `Program` runs through `execute`; see `qsim.runtime.protocol`.
Errors inside a node are re-raised naming it (`node_context`); an op the backend's table
lacks is a `ModelError` naming the node, the op and the backend.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from qsim.errors import InputError, ModelError, node_context
from qsim.graph.ir import Graph, Node
from qsim.graph.ops import Op
from qsim.runtime.protocol import NodeRun, Program
from qsim.trace import Trace


def check_input(node: Node, x: Any, dtype: Any) -> np.ndarray:
    """``x`` as a batch-first array of ``dtype``, or `InputError` naming the expected shape.

    The input node's ``shape`` is the non-batch shape: (H, W, C) for images (NHWC; H or W
    may be None: any size), (C,) or (T, C) for feature tensors. One sample without the
    batch axis is a batch of one.
    """
    shape = tuple(node.attrs["shape"])
    dims = ", ".join(str(d) if d is not None else "HWT"[i] if len(shape) == 3 and i < 2 else "?"
                     for i, d in enumerate(shape))
    want = f"(N, {dims}) or ({dims}{',' if len(shape) == 1 else ''})"
    image = len(shape) == 3
    arr = np.asarray(x)
    if arr.ndim == len(shape):
        arr = arr[None]
    if arr.ndim != len(shape) + 1:
        raise InputError(f"input '{node.name}': got shape {np.shape(x)}, expected {want}"
                         + (" (NHWC)" if image else " (batch first)"))
    if image:
        h, w, c = shape
        if arr.shape[3] != c:
            raise InputError(f"input '{node.name}': got {arr.shape[3]} channels (shape {np.shape(x)}), "
                             f"expected {want}")
        if (h is not None and arr.shape[1] != h) or (w is not None and arr.shape[2] != w):
            raise InputError(f"input '{node.name}': got {arr.shape[1]}x{arr.shape[2]}, the model is fixed "
                             f"at {h}x{w}: expected {want}")
    elif any(d is not None and d != a for d, a in zip(shape, arr.shape[1:])):
        raise InputError(f"input '{node.name}': got shape {np.shape(x)}, expected {want}")
    if arr.size == 0:
        raise InputError(f"input '{node.name}': empty input of shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        what = "image already preprocessed for the model (e.g. scaled to [-1, 1])" if image else \
            "array already preprocessed for the model"
        raise InputError(f"input '{node.name}': dtype {arr.dtype}; executors take a float {what}")
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


def reader_counts(graph: Graph) -> dict[str, int]:
    """node -> how many times its output is read (each model output counts once more)."""
    remaining = {n.name: 0 for n in graph}
    for node in graph:
        for src in node.inputs:
            remaining[src] += 1
    for out in graph.outputs:
        remaining[out] += 1
    return remaining


def execute(program: Program, x: Any, *, keep_values: bool = True, counters: bool = True,
            state: dict[str, Any] | None = None) -> Trace:
    """Run `program` on `x` (batch-first float array, one sample, or {input name: array}).

    Args:
        keep_values: keep every node's tensor in the trace (False: only the outputs, and
            tensors are freed as soon as their last reader ran).
        counters: count overflow at every site (False skips the counting work).
        state: the run's scratch state (``NodeRun.state``) to start from; a caller that
            passes it reads back what the kernels left there (TFLite: the counter records).
    """
    feeds = bind_inputs(program.graph, x)
    specialize = getattr(program, "for_input", None)
    if specialize is not None:  # a program whose lowering depends on the input size (k210)
        program = specialize(feeds)
    graph = program.graph
    trace = Trace(program.executor)
    tensors: dict[str, Any] = {}
    remaining = None if keep_values else reader_counts(graph)  # only freeing needs it
    if state is None:
        state = {}
    check = getattr(program, "check_input", None)  # a program whose inputs are not float arrays
    outputs = set(graph.outputs)
    static = program.static_counters if counters else {}
    ops, feed, record, counts_every_node = program.ops, program.feed, program.record, program.counts_every_node
    node = None
    try:  # one handler for the run, not a context manager per node (that cost ~2 us a node)
        for node in graph:
            keep = keep_values or node.name in outputs
            made = static.get(node.name)
            ctx = NodeRun(node, counters, state, {site: c.copy() for site, c in made.items()} if made else {}, keep)
            if node.op == Op.INPUT:
                x = feeds[node.name]
                out = feed(node, check(node, x) if check else check_input(node, x, program.input_dtype), ctx)
            else:
                kernel = ops.get(node.op)
                if kernel is None:
                    raise ModelError(f"op {node.op!r} has no {program.executor} kernel; that backend runs: "
                                     f"{', '.join(sorted(str(k) for k in ops))}")
                out = kernel(program, node, [tensors[i] for i in node.inputs], ctx)
            tensors[node.name] = out
            if counters and (counts_every_node or ctx.counters):
                trace.counters[node.name] = ctx.counters
            record(trace, node, out, keep)
            if not keep_values:  # free tensors nobody reads any more (and dead ends at once)
                for src in node.inputs:
                    remaining[src] -= 1
                    if remaining[src] == 0:
                        del tensors[src]
                if remaining[node.name] == 0:
                    del tensors[node.name]
    except Exception:
        if node is None:
            raise
        with node_context(node.name, node.op):  # re-raised naming the node that failed
            raise
    for name in graph.outputs:
        trace.outputs[name] = trace.values[name]
    return trace
