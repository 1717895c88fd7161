"""Range statistics, integer bits, the suggested plan."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qsim.analysis.profile import (
    BINS_PER_OCTAVE,
    Profile,
    RangeStats,
    format_for,
    int_bits_needed,
)
from qsim.errors import InputError, QsimError
from qsim.fixed import QFormat
from qsim.graph import Graph, Node
from qsim.trace import Trace

TOL = 2.0 ** (1.0 / (2 * BINS_PER_OCTAVE))


def _brute_int_bits(lo, hi, word):
    """Smallest m whose format holds lo and hi after rounding to nearest (by code arithmetic)."""
    for m in range(word):
        f = QFormat(m, word - 1 - m)
        codes = [math.floor(v * 2 ** f.frac_bits + 0.5) for v in (lo, hi)] + \
                [math.ceil(v * 2 ** f.frac_bits - 0.5) for v in (lo, hi)]
        if all(f.min_code <= c <= f.max_code for c in codes):
            return m
    return word - 1


@given(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4), st.sampled_from([8, 12, 16]))
def test_int_bits_needed_matches_rounding_by_codes(a, b, word):
    lo, hi = min(a, b), max(a, b)
    assert int_bits_needed(lo, hi, word) == _brute_int_bits(lo, hi, word)


def test_int_bits_edges():
    assert int_bits_needed(-128.0, 0.0) == 7           # -2**7 is a code of Q7.8
    assert int_bits_needed(0.0, 128.0) == 8            # +2**7 is not
    assert int_bits_needed(0.0, 127.998) == 7          # rounds to max_code 127.99609375
    assert int_bits_needed(0.0, 1e9) == 15             # does not fit: the whole word
    assert str(format_for(-3.0, 2.0, 8, margin_bits=2)) == "Q4.3"
    assert str(format_for(0, 1e9, 16, margin_bits=3)) == "Q15.0"
    with pytest.raises(QsimError):
        int_bits_needed(0, 1, word_bits=1)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300), st.sampled_from([0.1, 1, 50, 99, 99.9]))
def test_percentiles_within_stated_factor(values, q):
    x = np.array(values)
    stats = RangeStats().update(x)
    exact = float(np.sort(x)[max(1, math.ceil(q / 100 * x.size)) - 1])
    got = stats.percentile(q)
    assert stats.min <= got <= stats.max
    if exact == 0 or abs(exact) < 2.0 ** -47:
        assert abs(got) <= 2.0 ** -47
    else:
        assert np.sign(got) == np.sign(exact)
        ratio = abs(got) / abs(exact)
        assert 1 / TOL - 1e-12 <= ratio <= TOL + 1e-12


def test_stats_are_batch_independent_and_exact_at_ends():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(10_000) * 7
    one = RangeStats().update(x)
    many = RangeStats()
    for part in np.array_split(x, 7):
        many.update(part)
    assert (one.min, one.max, one.count, one.zeros) == (many.min, many.max, many.count, many.zeros)
    assert np.array_equal(one.hist_pos, many.hist_pos) and np.array_equal(one.hist_neg, many.hist_neg)
    assert one.percentile(0) == x.min() and one.percentile(100) == x.max()
    assert one.mean == pytest.approx(x.mean()) and one.std == pytest.approx(x.std())


def test_nan_activation_is_named():
    with pytest.raises(InputError, match="conv.*non-finite"):
        RangeStats().update(np.array([1.0, np.nan]), "node 'conv' activations")


def _graph():
    rng = np.random.default_rng(0)
    return Graph([
        Node("x", "input", attrs={"shape": (4, 4, 3)}),
        Node("pad", "pad", ["x"], attrs={"pads": (1, 1, 1, 1)}),
        Node("conv", "conv2d", ["pad"], attrs={"strides": (1, 1), "pads": (0, 0, 0, 0)},
             weights={"kernel": rng.uniform(-3.5, 2.0, (3, 3, 3, 2)).astype(np.float32),
                      "bias": np.array([0.001, -0.002], np.float32)}),
        Node("relu", "relu", ["conv"]),
        Node("relu6", "relu", ["relu"], attrs={"max_value": 6.0}),
    ], outputs=["relu6"])


def _trace(scale):
    return Trace(executor="float", values={
        "x": np.array([-1.0, 1.0]) * 0.9, "pad": np.array([0.0, 0.9]),
        "conv": np.array([-20.0, 30.0]) * scale, "relu": np.array([0.0, 30.0]) * scale,
        "relu6": np.array([0.0, 5.9])})


def test_profile_and_suggested_plan():
    g = _graph()
    prof = Profile(g)
    prof.update(_trace(1.0)).update(_trace(2.0))
    conv = prof.layers["conv"]
    assert (conv.act.min, conv.act.max) == (-40.0, 60.0)
    assert conv.weights.count == 54 and -3.5 <= conv.weights.min < -3
    sug = prof.suggest(word_bits=16, margin_bits=1, acc_bits=40)
    assert sug["conv"]["act"] == "Q7.8"        # 60 needs 6 integer bits, +1 margin
    assert sug["conv"]["weights"] == "Q2.13"   # |w| < 4, known exactly: no margin
    # the bias never keeps more fraction bits than the accumulator (x.frac + w.frac)
    x_frac = QFormat.parse(sug["x"]["act"]).frac_bits
    assert sug["x"]["act"] == "Q0.15"          # 0.9 needs 0 bits; no margin on the input
    assert prof.suggest(16, 1, input_margin_bits=2)["x"]["act"] == "Q2.13"
    assert QFormat.parse(sug["conv"]["bias"]).frac_bits <= x_frac + 13
    assert "pad" not in sug                    # passes its input's codes through
    assert sug["relu6"]["act"] == "Q3.12"      # bounded by [0, 6] by construction: no margin
    plan = prof.suggest_plan(word_bits=16, margin_bits=1, acc_bits=32)
    assert str(plan.for_node("conv").act) == "Q7.8"
    assert str(plan.for_node("relu").act) == "Q7.8"
    plan.validate(g)
    doc = prof.to_dict()
    assert doc["layers"][2]["act"]["int_bits"] == 6 and doc["layers"][2]["suggested"]["act"] == "Q7.8"
    text = prof.render()
    assert "| conv | conv2d | [-40, 60] |" in text


def test_profile_errors():
    prof = Profile(_graph())
    with pytest.raises(QsimError, match="no calibration image"):
        prof.suggest()
    with pytest.raises(QsimError, match="'nope'"):
        prof.update(Trace(executor="float", values={"nope": np.zeros(2)}))


def test_weights_give_up_fraction_bits_so_the_accumulator_holds_the_output():
    # the trained A98 head: ReLU6 input (Q3.12), |w| < 0.5 (Q0.15), output down to -38.9
    # (Q7.8 with margin): 12 + 15 = 27 accumulator fraction bits leave 4 integer bits in 32
    g = Graph([
        Node("x", "input", attrs={"shape": (None, None, 3)}),
        Node("r6", "relu", ["x"], attrs={"max_value": 6.0}),
        Node("head", "conv2d", ["r6"], attrs={"strides": (1, 1), "pads": (0, 0, 0, 0)},
             weights={"kernel": np.full((1, 1, 3, 2), 0.49, np.float32), "bias": np.array([0.01, -0.02], np.float32)}),
    ], outputs=["head"])
    prof = Profile(g).update(Trace("float", values={
        "x": np.array([0.5]), "r6": np.array([0.0, 6.0]), "head": np.array([-38.9, 4.8])}))
    notes: list[str] = []
    sug = prof.suggest(16, margin_bits=1, acc_bits=32, notes=notes)
    assert sug["r6"]["act"] == "Q3.12" and sug["head"]["act"] == "Q7.8"
    # 32 - 1 - 7 = 24 fraction bits at most: weights keep 24 - 12 = 12
    assert sug["head"]["weights"] == "Q3.12"
    assert QFormat.parse(sug["head"]["bias"]).frac_bits <= 24
    assert notes == ["head: weights Q0.15 -> Q3.12 so the 32-bit accumulator (24 fraction bits) "
                     "holds the output range (7 integer bits)"]
    # with a 40-bit accumulator nothing needs to change
    notes.clear()
    assert prof.suggest(16, 1, acc_bits=40, notes=notes)["head"]["weights"] == "Q0.15" and not notes
    # 20 bits: integer weights (Q15.0) just fit; 18 bits cannot be fitted by the weights alone
    prof.suggest(16, 1, acc_bits=20, notes=notes)
    assert notes[-1].startswith("head: weights Q0.15 -> Q15.0 so the 20-bit") and "short" not in notes[-1]
    prof.suggest(16, 1, acc_bits=18, notes=notes)
    assert notes[-1].endswith("; still 2 bit(s) short: widen the accumulator or narrow the input's fraction")
    # the plan passes validation and the accumulator holds the worst output
    plan = prof.suggest_plan(16, 1, acc_bits=32).validate(g)
    np_ = plan.for_node("head")
    acc_frac = np_.acc_frac_bits(plan.for_node("r6").act)
    assert 38.9 * 2 ** acc_frac < 2 ** (np_.acc_bits - 1)
