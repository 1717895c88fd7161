"""Activations the KPU cannot fuse (tanh, hard_sigmoid, hard_swish, swish, softmax) run as K210
CPU ops: float between uint8 tensors, within a few output LSBs of float."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.executors.float_exec import run as float_run
from qsim.graph.ir import Graph, Node
from qsim.k210.executor import run as k210_run
from qsim.k210.lowering import lower
from qsim.k210.quantize import quantize_graph

ACTS = [("tanh", {}), ("hard_sigmoid", {"slope": 1 / 6, "offset": 0.5}), ("hard_swish", {}), ("swish", {}),
        ("softmax", {"axis": -1})]


@pytest.mark.parametrize("op,attrs", ACTS, ids=[a[0] for a in ACTS])
def test_unfused_activation_runs_on_the_cpu(op, attrs):
    rng = np.random.default_rng(5)
    g = Graph([Node("x", "input", attrs={"shape": (None, None, 3)}),
               Node("c", "conv2d", ["x"], {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilation": (1, 1)},
                    {"kernel": rng.normal(0, 1, (3, 3, 3, 4)).astype(np.float32), "bias": np.zeros(4, np.float32)}),
               Node("a", op, ["c"], dict(attrs))], ["a"], name=op)
    cal = rng.uniform(-1, 1, (4, 8, 8, 3)).astype(np.float32)
    prog = quantize_graph(g, cal)
    assert next(s for s in prog.steps if s.name == "a").kind == "cpu"
    lowered = {s.name: s for s in lower(g, (8, 8))}  # the memory / speed estimates see it too
    assert lowered["a"].kind == "cpu" and lowered["a"].op == op and lowered["a"].out_shape == (4, 8, 8)
    x = rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    got = k210_run(g, x, calibration=prog).outputs["a"]
    want = float_run(g, x).outputs["a"]
    # the conv's uint8 output error (a few LSBs of its scale) through a function of slope <= 1.1
    assert np.max(np.abs(got - want)) < 3 * prog.params["c"].scale + 2 * prog.params["a"].scale

