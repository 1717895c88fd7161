"""Range statistics, integer bits, the suggested plan."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qsim.analysis.profile import (
    BINS_PER_OCTAVE, Profile, RangeStats, format_for, int_bits_needed,
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
    sug = prof.suggest(word_bits=16, margin_bits=1)
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
