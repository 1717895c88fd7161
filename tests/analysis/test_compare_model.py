"""Per-layer comparison of real executors on a small hand-built graph (no TensorFlow)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from qsim.analysis.compare import TraceComparer, compare_model, compare_traces, render_comparison
from qsim.analysis.overflow import overflow_report
from qsim.analysis.profile import profile_model
from qsim.errors import InputError, QsimError
from qsim.executors import run
from qsim.graph import Graph, Node
from qsim.plan import Plan
from qsim.trace import Trace


def _graph():
    rng = np.random.default_rng(3)
    return Graph([
        Node("x", "input", attrs={"shape": (None, None, 3)}),
        Node("conv", "conv2d", ["x"], attrs={"strides": (1, 1), "pads": (1, 1, 1, 1), "dilation": (1, 1)},
             weights={"kernel": rng.normal(0, 0.5, (3, 3, 3, 4)).astype(np.float32),
                      "bias": rng.normal(0, 0.1, 4).astype(np.float32)}),
        Node("relu", "relu", ["conv"], attrs={"max_value": 6.0}),
        Node("pw", "conv2d", ["relu"], attrs={"strides": (1, 1), "pads": (0, 0, 0, 0), "dilation": (1, 1)},
             weights={"kernel": rng.normal(0, 0.5, (1, 1, 4, 2)).astype(np.float32)}),
    ], outputs=["pw"], name="small")


def _inputs(n=3):
    rng = np.random.default_rng(0)
    return [rng.uniform(-1, 1, (1, 6, 5, 3)).astype(np.float32) for _ in range(n)]


def test_fixed_vs_float_errors_are_bounded_and_shrink_with_fraction_bits():
    g = _graph()
    comps = {fmt: compare_model(g, _inputs(), executor="fixed", plan=Plan.uniform(fmt, acc_bits=48))
             for fmt in ("Q5.10", "Q5.18")}
    c = comps["Q5.10"]
    assert [r.name for r in c.layers] == ["x", "conv", "relu", "pw"]
    assert [r.op for r in c.layers] == ["input", "conv2d", "relu", "conv2d"]
    assert c.n_images == 3 and c.reference == "float" and c.test == "fixed" and c.outputs == ["pw"]
    x = c.layer("x").stats
    assert x.lsb == 2.0 ** -10 and x.max_abs <= 2.0 ** -11 + 1e-12 and x.over_1lsb == 0.0
    assert c.layer("conv").shape == (1, 6, 5, 4) and c.layer("conv").stats.n == 3 * 6 * 5 * 4
    for name in ("x", "conv", "relu", "pw"):
        gain = comps["Q5.18"].layer(name).stats.sqnr_db - c.layer(name).stats.sqnr_db
        assert gain > 40, (name, gain)  # 8 more fraction bits: ~48 dB
    assert c.first_below(1000.0).name == "x" and c.first_below(-1000.0) is None
    text = render_comparison(c, 1000.0)
    assert "fixed vs float, 3 image(s), 4 layer(s)" in text and "first layer below 1000 dB: x" in text


def test_trace_pairs_of_any_executor_and_weights_mode():
    g = _graph()
    x = _inputs(1)[0]
    ref = run(g, x, executor="float")
    assert compare_traces(ref, ref, g).first_below(1e9) is None   # exact: inf dB everywhere
    half = compare_traces(ref, run(g, x, executor="fp16", plan=Plan.uniform("Q6.9", mode="fp16")), g)
    assert half.test == "fp16" and all(r.format is None for r in half.layers)
    assert 40 < half.layer("pw").stats.sqnr_db < 120
    w_only = compare_traces(ref, run(g, x, plan=Plan.uniform("Q2.13", mode="weights")), g)
    assert w_only.layer("x").stats.sqnr_db == math.inf          # activations stay float
    assert w_only.layer("pw").stats.sqnr_db < math.inf


def test_comparer_errors_name_the_node():
    a = Trace("float", values={"n1": np.zeros(3), "n2": np.zeros(2)})
    b = Trace("fixed", values={"n1": np.zeros(4)})
    with pytest.raises(InputError, match="node 'n1'.*shape"):
        compare_traces(a, b)
    with pytest.raises(QsimError, match="share no node"):
        compare_traces(Trace("float", values={"a": np.zeros(1)}), Trace("fixed", values={"b": np.zeros(1)}))
    comparer = TraceComparer(nodes=["n2"])
    with pytest.raises(QsimError, match="'n2' is missing from the test trace"):
        comparer.update(a, b)
    with pytest.raises(QsimError, match="no traces"):
        TraceComparer().result()


def test_overflow_and_profile_on_real_runs():
    g = _graph()
    prof = profile_model(g, _inputs())
    plan = prof.suggest_plan(word_bits=16, margin_bits=0, acc_bits=40).validate(g)
    rep = overflow_report([run(g, x, executor="fixed", plan=plan) for x in _inputs()], g)
    # calibrated on these very images with exact ranges: no data site overflows
    assert all(c.events == 0 for layer in rep.layers.values() for s, c in layer.sites.items()
               if s not in ("weights", "bias"))
    narrow = overflow_report([run(g, x, executor="fixed", plan=Plan.uniform("Q0.15", acc_bits=40))
                              for x in _inputs()], g)
    assert narrow.total_events > 0 and narrow.layers["conv"].events > 0   # |conv| > 1
    assert narrow.n_images == 3


def test_affine_formats_use_their_scale_as_lsb():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Affine:  # like the K210's uint8 (scale, zero point)
        scale: float
        zero_point: int

    ref = Trace("float", values={"a": np.array([0.0, 1.0, 2.0, 3.0])})
    test = Trace("k210", values={"a": np.array([0.0, 1.05, 2.3, 3.0])}, formats={"a": Affine(0.1, 0)})
    row = compare_traces(ref, test).layer("a")
    assert row.stats.lsb == 0.1 and row.stats.over_1lsb == 0.25   # only |2.3 - 2.0| > 0.1
