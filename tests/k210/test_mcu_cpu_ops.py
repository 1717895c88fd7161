"""K210: the MCU layers (dense, rescale, pools, reshape, multiply) run as CPU steps (issue 10).

Each CPU step's uint8 codes equal the definition computed here again (dequantize the
input codes with their params, the float op, quantize with the step's param); the whole
run tracks float; the lowering lists them as CPU steps with (C, T, 1) maps for non-images;
a feature model and an op without a K210 kernel are one-line errors naming the model and op.
"""
from __future__ import annotations

import numpy as np
import pytest

from qsim.errors import ModelError
from qsim.executors.float_exec import float_op
from qsim.executors.float_exec import run as float_run
from qsim.graph.ir import Graph, Node
from qsim.k210 import executor as k210
from qsim.k210.lowering import lower
from qsim.k210.quantize import quantize_graph


def mcu_graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.4).astype(np.float32)

    return Graph([
        Node("in", "input", attrs={"shape": (9, 10, 3)}),
        Node("scale", "rescale", ["in"], {}, {"scale": np.array([0.5, 1.0, 2.0], np.float32),
                                              "offset": np.zeros(3, np.float32)}),
        Node("c", "conv2d", ["scale"], {"strides": (1, 1), "pads": "same"}, {"kernel": w(3, 3, 3, 4), "bias": w(4)}),
        Node("r", "relu", ["c"]),
        Node("avg", "avg_pool", ["r"], {"pool_size": (3, 3), "strides": (2, 2), "pads": "same"}),
        Node("mx", "max_pool", ["avg"], {"pool_size": (2, 2), "strides": (2, 2), "pads": "same"}),
        Node("sq", "global_avg_pool", ["mx"], {"keepdims": True}),
        Node("ex", "multiply", ["mx", "sq"]),
        Node("gm", "global_max_pool", ["ex"], {"keepdims": False}),
        Node("seq", "reshape", ["gm"], {"shape": (2, 2)}),
        Node("fc", "dense", ["seq"], {}, {"kernel": w(2, 3), "bias": w(3)}),
    ], ["fc"], name="mcu")


def test_cpu_steps_equal_their_definition_and_track_float():
    g = mcu_graph()
    rng = np.random.default_rng(1)
    cal = rng.uniform(-1, 1, (4, 9, 10, 3)).astype(np.float32)
    x = rng.uniform(-1, 1, (2, 9, 10, 3)).astype(np.float32)
    prog = quantize_graph(g, cal)
    t = k210.run(g, x, calibration=prog)
    kinds = {s.name: s.kind for s in prog.steps}
    for name in ("scale", "avg", "mx", "sq", "ex", "gm", "seq", "fc"):
        assert kinds[name] == "cpu", name
        node, step = g[name], next(s for s in prog.steps if s.name == name)
        ins = [prog.params[i].dequantize(t.codes[i]) for i in node.inputs]  # codes in the trace are NHWC
        want = step.out_q.quantize(float_op(node, ins))[0]
        np.testing.assert_array_equal(t.codes[name], want.astype(np.int64), err_msg=name)
    ref = float_run(g, x)
    assert t.values["fc"].shape == ref.values["fc"].shape == (2, 2, 3)
    for name in ("avg", "ex", "gm", "fc"):
        a, b = t.values[name].ravel(), ref.values[name].ravel()
        assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.98, name
    one = k210.run(g, x[1:], calibration=prog)  # batch independence
    np.testing.assert_array_equal(one.codes["fc"][0], t.codes["fc"][1])


def test_lowering_lists_them_as_cpu_steps():
    steps = {s.name: s for s in lower(mcu_graph(), (9, 10))}
    assert steps["avg"].kind == "cpu" and steps["avg"].out_shape == (4, 5, 5)
    assert steps["gm"].out_shape == (4, 1, 1) and steps["seq"].out_shape == (2, 2, 1)
    assert steps["fc"].out_shape == (3, 2, 1) and steps["c"].kind == "kpu"


def test_feature_models_and_missing_ops_are_one_line_errors():
    feats = Graph([Node("x", "input", attrs={"shape": (6,)}),
                   Node("d", "dense", ["x"], {}, {"kernel": np.ones((6, 2), np.float32)})], ["d"], name="ad")
    with pytest.raises(ModelError, match=r"ad: input 'x' has shape \(6,\), not an image \(H, W, C\)"):
        k210.prepare(feats, calibration={"x": (0, 1), "d": (0, 1)})
    supported = set(k210.KpuStepsProgram.ops)
    missing = [op for op in ("softmax", "tanh", "hard_swish", "swish", "hard_sigmoid") if op not in supported]
    if missing:  # an activation without a K210 kernel: the walker names it and what runs
        g = Graph([Node("x", "input", attrs={"shape": (4, 4, 3)}), Node("a", missing[0], ["x"], {"axis": -1})],
                  ["a"])
        x = np.zeros((1, 4, 4, 3), np.float32)
        with pytest.raises(ModelError, match=rf"op '{missing[0]}' has no k210 kernel; that backend runs: .*avg_pool"):
            k210.run(g, x, calibration={"x": (-1, 1), "a": (-1, 1)})
