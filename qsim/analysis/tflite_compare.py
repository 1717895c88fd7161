"""Compare a TFLite int8/uint8 run (dequantized) with the float run of the Keras model it
came from, layer by layer (``qsim compare KERAS.h5 --against MODEL.tflite``).

Tensors are matched by name: the converter names an op's output tensor after the TF ops
it fused, ``;``-separated, the producing (last) op first, e.g.
``functional_1/A98_1/block_1_expand_relu_1/Relu6;.../block_1_expand_BN_1/batchnorm/...``.
The layer part of the first segment (``block_1_expand_relu_1``, without Keras 3's ``_1``
call suffix when needed) names the qsim graph node. Model outputs are matched by
position. Unmatched or differently shaped tensors are left out (`match_nodes` says
which matched). The comparison itself is `qsim.analysis.compare` (SQNR, max error,
share of values more than one output LSB away, first layer below a threshold).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from qsim.errors import QsimError
from qsim.tflite.executor import quantize_input
from qsim.tflite.ops import dequantize
from qsim.tflite.reader import TfliteModel


@dataclass(frozen=True)
class AffineFormat:
    """An affine tensor format for reports: value = scale * (code - zero_point)."""

    scale: float
    zero_point: int
    dtype: str

    def __str__(self) -> str:
        return f"{self.dtype.lower()} s={self.scale:.4g} zp={self.zero_point}"


def _layer_of(tensor_name: str) -> list[str]:
    """Candidate layer names of a converted tensor: the path components of its first ';'
    segment, innermost first (``.../block_1_project_BN_1/batchnorm/add_1`` gives
    ``add_1, batchnorm, block_1_project_BN_1``...), each also without a ``_N`` suffix."""
    first = tensor_name.split(";")[0].split(":")[0]
    out = []
    for comp in reversed(first.split("/")[1:] or [first]):
        out += [comp, re.sub(r"_\d+$", "", comp)]
    return out


def match_nodes(graph: Any, model: TfliteModel) -> dict[str, int]:
    """qsim graph node name -> TFLite tensor index, for every op output that matches."""
    names = {node.name for node in graph}
    out: dict[str, int] = {}
    for op in model.operators:
        for i in op.outputs:
            for cand in _layer_of(model.tensors[i].name):
                if cand in names and cand not in out:
                    out[cand] = i
                    break
    for node_name, idx in zip(graph.outputs, model.outputs):
        out[node_name] = idx
    return out


def tflite_trace(model: TfliteModel, run: Any, nodes: dict[str, int]):
    """A qsim `Trace` of a TFLite run: dequantized values (float64) under the node names."""
    from qsim.trace import Trace

    tr = Trace(executor="tflite")
    for name, idx in nodes.items():
        t = model.tensors[idx]
        v = run.tensors[idx]
        if t.quant is not None and t.dtype.kind in "iu":
            vals = dequantize(v, float(t.quant.scale[0]), int(t.quant.zero_point[0])).astype(np.float64)
            tr.formats[name] = AffineFormat(float(t.quant.scale[0]), int(t.quant.zero_point[0]), t.type_name)
            tr.codes[name] = v.astype(np.int64)
        else:
            vals = np.asarray(v, np.float64)
        tr.values[name] = vals
    return tr


def compare_against(graph: Any, model: TfliteModel, inputs: Iterable[np.ndarray],
                    float_run: Callable[[np.ndarray], Any],
                    progress: Callable[[Iterable], Iterable] | None = None, options=None):
    """Per-layer error of the TFLite run against ``float_run(x)`` (a float `Trace`) for every
    float NHWC input x (quantized with the TFLite input's parameters): a `Comparison`.

    Nodes are those `match_nodes` finds whose float value has the same shape.
    """
    from qsim.analysis.compare import TraceComparer

    nodes = match_nodes(graph, model)
    if not nodes:
        raise QsimError(f"{model.path}: no TFLite tensor matches a layer of {graph.name!r} by name")
    from qsim.tflite.runner import TfliteFunction

    fn = TfliteFunction(model, options)  # one prepared program per input shape
    t_in = fn.t_in
    comparer = TraceComparer(ops={node.name: node.op for node in graph})
    for x in (inputs if progress is None else progress(inputs)):
        ref = float_run(x)
        prog = fn.program(x.shape)
        tr = tflite_trace(prog.model, prog.run(quantize_input(t_in, x)), nodes)
        for name in list(tr.values):
            if name not in ref.values or np.shape(ref.values[name]) != tr.values[name].shape:
                del tr.values[name]
                tr.formats.pop(name, None)
        tr.outputs = {n: tr.values[n] for n in graph.outputs if n in tr.values}
        comparer.update(ref, tr)
    return comparer.result()
