"""tanh, swish, hard_sigmoid, hard_swish, leaky ReLU, softmax: kernels equal their references.

Codes and overflow counts, every rounding and overflow mode, tables (<= 16-bit inputs) and
the distinct-code path (17..20 bits; 56 bits, where nothing is exact in float64), ties by
hand, the cache matching by value.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kstrategies import OVERFLOWS, ROUNDINGS, assert_tally, codes, qformats

from qsim.errors import InputError, PlanError
from qsim.fixed import QFormat
from qsim.fixed.counters import OverflowCounter
from qsim.fixed.ref import quantize_ref
from qsim.kernels import activations, lut, softmax
from qsim.kernels.ref import activations as ref

SHAPES = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 4))
WORDS = qformats(max_word=20)


def _check(got, ref_pair, counter):
    want, tally = ref_pair
    np.testing.assert_array_equal(got, want)
    assert_tally(counter, tally)


def _kw(f_in, f_out, rounding, overflow):
    return dict(in_fmt=f_in, out_fmt=f_out, rounding=rounding, overflow=overflow)


@settings(max_examples=80)
@given(st.data(), SHAPES, WORDS, WORDS, ROUNDINGS, OVERFLOWS, st.sampled_from(["tanh", "swish"]))
def test_transcendental(data, shape, f_in, f_out, rounding, overflow, name):
    x = data.draw(codes(f_in, shape))
    c = OverflowCounter()
    fn, value = {"tanh": (activations.tanh, ref.tanh_value), "swish": (activations.swish, ref.swish_value)}[name]
    kw = _kw(f_in, f_out, rounding, overflow)
    _check(fn(x, counter=c, **kw), ref.unary_ref(x, value, **kw), c)


@settings(max_examples=80)
@given(st.data(), SHAPES, WORDS, WORDS, ROUNDINGS, OVERFLOWS,
       st.sampled_from([(1 / 6, Fraction(1, 6), 0.5, Fraction(1, 2)), (0.2, Fraction(1, 5), 0.5, Fraction(1, 2)),
                        (0.25, Fraction(1, 4), 0.5, Fraction(1, 2)), (0.5, Fraction(1, 2), 0.25, Fraction(1, 4))]))
def test_hard_sigmoid(data, shape, f_in, f_out, rounding, overflow, params):
    slope, slope_q, offset, offset_q = params
    x = data.draw(codes(f_in, shape, tie_shift=2))
    c = OverflowCounter()
    kw = _kw(f_in, f_out, rounding, overflow)
    got = activations.hard_sigmoid(x, slope=slope, offset=offset, counter=c, **kw)
    _check(got, ref.unary_ref(x, lambda v: ref.hard_sigmoid_value(v, slope_q, offset_q), **kw), c)


@settings(max_examples=80)
@given(st.data(), SHAPES, WORDS, WORDS, ROUNDINGS, OVERFLOWS)
def test_hard_swish(data, shape, f_in, f_out, rounding, overflow):
    x = data.draw(codes(f_in, shape, tie_shift=2))
    c = OverflowCounter()
    kw = _kw(f_in, f_out, rounding, overflow)
    _check(activations.hard_swish(x, counter=c, **kw), ref.unary_ref(x, ref.hard_swish_value, **kw), c)


@settings(max_examples=80)
@given(st.data(), SHAPES, WORDS, WORDS, qformats(max_word=12), ROUNDINGS, OVERFLOWS,
       st.sampled_from([0.2, 0.3, 0.01, 1.5, -0.5]), st.sampled_from([0.0, 0.5, -0.25, 0.1]),
       st.sampled_from([None, 6.0, 0.75]))
def test_leaky_relu(data, shape, f_in, f_out, f_w, rounding, overflow, slope, threshold, max_value):
    if max_value is not None and threshold >= max_value:
        threshold = 0.0
    x = data.draw(codes(f_in, shape))
    cw, c = OverflowCounter(), OverflowCounter()
    a = activations.quantize_slope(slope, f_w, rounding=rounding, overflow=overflow, counter=cw)
    [a_ref], (events, _, _) = quantize_ref([slope], f_w, rounding, overflow)
    assert a == a_ref and cw.events == events
    kw = _kw(f_in, f_out, rounding, overflow)
    got = activations.leaky_relu(x, slope_code=a, slope_fmt=f_w, threshold=threshold, max_value=max_value,
                                 counter=c, **kw)
    top = None if max_value is None else Fraction(max_value)
    cap = None if top is None else int(top * 2**f_out.frac_bits)
    want = ref.unary_ref(x, lambda v: ref.leaky_relu_value(v, Fraction(a, 2**f_w.frac_bits), Fraction(threshold), top),
                         cap=cap, **kw)
    _check(got, want, c)


@settings(max_examples=60)
@given(st.data(), st.tuples(st.integers(1, 3), st.integers(1, 5)), qformats(max_word=18), qformats(max_word=16),
       ROUNDINGS, OVERFLOWS, st.sampled_from([-1, -2]))
def test_softmax(data, shape, f_in, f_out, rounding, overflow, axis):
    x = data.draw(codes(f_in, shape))
    c = OverflowCounter()
    kw = dict(axis=axis, **_kw(f_in, f_out, rounding, overflow))
    got = softmax.softmax(x, counter=c, **kw)
    _check(got, ref.softmax_ref(x, **kw), c)
    if c.events == 0:  # a row sums to 1 within n output steps (half steps when rounding to nearest)
        n = x.shape[axis]
        err = np.abs(got.sum(axis=axis) - 2**f_out.frac_bits)
        assert np.all(err <= n * (1 if rounding in ("floor", "toward_zero") else 0.5) + 1), err


# --- wide inputs: the exact (decimal) evaluator alone -------------------------------------------
@pytest.mark.parametrize("name", ["tanh", "swish"])
@pytest.mark.parametrize("rounding", ["floor", "toward_zero", "half_even"])
def test_words_wider_than_float64_use_the_exact_path(name, rounding):
    """A 56-bit input word: no code is exact in float64 terms, all go through decimal."""
    f_in, f_out = QFormat(40, 15), QFormat(45, 18)
    rng = np.random.default_rng(3)
    x = np.concatenate([[0, 1, -1, 2**15, -(2**15), 3 * 2**14], rng.integers(-(2**27), 2**27, 12)])
    fn, value = {"tanh": (activations.tanh, ref.tanh_value), "swish": (activations.swish, ref.swish_value)}[name]
    c = OverflowCounter()
    kw = _kw(f_in, f_out, rounding, "saturate")
    _check(fn(x, counter=c, **kw), ref.unary_ref(x, value, **kw), c)


def test_far_arguments_by_hand():
    """|v| = 2**40: tanh is 1 - 2e-(2**41)..., swish(v) is v minus as little, swish(-v) is -0.000...;
    the clamped exact evaluation must round those as the true values."""
    f_in, f_out = QFormat(45, 10), QFormat(50, 13)
    big = 2**40 * 2**10
    x = np.array([big, -big])
    kw = dict(in_fmt=f_in, out_fmt=f_out, overflow="saturate")
    one = 2**13
    assert activations.tanh(x, rounding="floor", **kw).tolist() == [one - 1, -one]
    assert activations.tanh(x, rounding="toward_zero", **kw).tolist() == [one - 1, -one + 1]
    assert activations.tanh(x, rounding="half_up", **kw).tolist() == [one, -one]
    v = 2**40 * one
    assert activations.swish(x, rounding="floor", **kw).tolist() == [v - 1, -1]
    assert activations.swish(x, rounding="toward_zero", **kw).tolist() == [v - 1, 0]
    assert activations.swish(x, rounding="half_even", **kw).tolist() == [v, 0]


@pytest.mark.parametrize("name", ["tanh", "swish", "exp"])
def test_float_and_exact_evaluators_agree_on_every_code(name, monkeypatch):
    """With the float path disabled (error bound = inf) every code goes through decimal."""
    spec = {"tanh": activations.TANH, "swish": activations.SWISH, "exp": softmax.EXP}[name]
    f_in = QFormat(4, 7)
    q = np.arange(f_in.min_code, 1 if name == "exp" else f_in.max_code + 1)
    for rounding in ("floor", "toward_zero", "half_up", "half_even"):
        fast = lut.round_transcendental(q, f_in.frac_bits, 9, rounding, spec)
        with monkeypatch.context() as m:
            m.setattr(lut, "FLOAT_REL_ERR", np.inf)
            slow = lut.round_transcendental(q, f_in.frac_bits, 9, rounding, spec)
        np.testing.assert_array_equal(fast, slow)


# --- by hand ----------------------------------------------------------------------------------
def test_hard_sigmoid_ties_and_variants():
    """Q3.1 code 1 = 0.5: 0.25 * 0.5 + 0.5 = 0.625 = 2.5 steps of UQ0.2, a tie."""
    kw = dict(slope=0.25, offset=0.5, in_fmt=QFormat(3, 1), out_fmt=QFormat(0, 2, signed=False), overflow="saturate")
    for rounding, want in [("floor", 2), ("half_even", 2), ("half_up", 3), ("half_away", 3), ("toward_zero", 2)]:
        assert activations.hard_sigmoid(np.array([1]), rounding=rounding, **kw).tolist() == [want], rounding
    # Keras 3 (1/6) and Keras 2 (0.2) at v = 1: 2/3 and 0.7 of UQ0.8 -> 170.67 -> 171, 179.2 -> 179
    q78 = QFormat(7, 8)
    u08 = QFormat(0, 8, signed=False)
    k3 = activations.hard_sigmoid(np.array([256, 3 * 256]), slope=1 / 6, offset=0.5, in_fmt=q78, out_fmt=u08,
                                  rounding="half_even", overflow="saturate")
    k2 = activations.hard_sigmoid(np.array([256, 3 * 256]), slope=0.2, offset=0.5, in_fmt=q78, out_fmt=u08,
                                  rounding="half_even", overflow="saturate")
    c = OverflowCounter()
    activations.hard_sigmoid(np.array([3 * 256]), slope=1 / 6, offset=0.5, in_fmt=q78, out_fmt=u08,
                             rounding="half_even", overflow="saturate", counter=c)
    assert k3.tolist() == [171, 255] and k2.tolist() == [179, 255] and c.events == 1  # 1.0 = 256 > 255


def test_hard_swish_by_hand():
    """v = -3 -> 0; v = 3 -> 3; v = 1 -> 1 * 4 / 6 = 0.6667; v = -1.5 -> -1.5 * 1.5 / 6 = -0.375 (a tie in Q.2)."""
    q = np.array([-12, 12, 4, -6])  # Q4.2 codes
    y = activations.hard_swish(q, in_fmt=QFormat(4, 2), out_fmt=QFormat(4, 2), rounding="half_even",
                               overflow="saturate")
    assert y.tolist() == [0, 12, 3, -2]  # -1.5 steps -> -2 (even)
    y = activations.hard_swish(q, in_fmt=QFormat(4, 2), out_fmt=QFormat(4, 2), rounding="half_up",
                               overflow="saturate")
    assert y.tolist() == [0, 12, 3, -1]


def test_tanh_swish_by_hand():
    q = np.array([0, 256, -256, 32767, -32768])  # Q7.8: 0, 1, -1, ~128, -128
    y = activations.tanh(q, in_fmt=QFormat(7, 8), out_fmt=QFormat(0, 15), rounding="floor", overflow="saturate")
    assert y.tolist() == [0, 24955, -24956, 32767, -32768]  # tanh(1) * 2**15 = 24955.7; tanh < 1: 32767
    c = OverflowCounter()
    y = activations.tanh(q, in_fmt=QFormat(7, 8), out_fmt=QFormat(0, 15), rounding="half_even",
                         overflow="saturate", counter=c)
    assert y.tolist() == [0, 24956, -24956, 32767, -32768] and c.events == 1  # +1.0 rounds to 32768
    y = activations.swish(q, in_fmt=QFormat(7, 8), out_fmt=QFormat(7, 8), rounding="floor", overflow="saturate")
    assert y.tolist() == [0, 187, -69, 32766, -1]  # 0.7311 * 256 = 187.1; v*sigmoid(v) just below v; -128 e**-128 < 0


def test_leaky_relu_by_hand():
    """LeakyReLU(0.3) with the slope in Q0.7 (0.3 -> 38/128 = 0.296875); ReLU(threshold=1)."""
    a = activations.quantize_slope(0.3, QFormat(0, 7), rounding="half_even", overflow="saturate")
    assert a == 38
    y = activations.leaky_relu(np.array([-16, -1, 0, 16]), slope_code=a, slope_fmt=QFormat(0, 7),
                               in_fmt=QFormat(3, 4), out_fmt=QFormat(3, 4), rounding="half_even", overflow="saturate")
    assert y.tolist() == [-5, 0, 0, 16]  # -16 * 0.296875 = -4.75 -> -5; -0.297 -> 0
    y = activations.leaky_relu(np.array([8, 16, 24]), slope_code=0, slope_fmt=QFormat(0, 7), threshold=1.0,
                               in_fmt=QFormat(3, 4), out_fmt=QFormat(3, 4), rounding="floor", overflow="saturate")
    assert y.tolist() == [0, 16, 24]


def test_softmax_by_hand():
    """[0, 0] -> 1/2 each; [1, 0]: e/(1+e) = 0.7311 -> 187 of 256; [9, 0] rounds 1.0 - 1.2e-4 to 256 > 255."""
    c = OverflowCounter()
    y = softmax.softmax(np.array([[0, 0], [256, 0], [9 * 256, 0]]), in_fmt=QFormat(7, 8),
                        out_fmt=QFormat(0, 8, signed=False), rounding="half_even", overflow="saturate", counter=c)
    assert y.tolist() == [[128, 128], [187, 69], [255, 0]] and c.events == 1


def test_tables_are_cached_by_value():
    lut.table_cache_clear()
    for _ in range(2):  # equal formats built twice: one table
        activations.tanh(np.array([1]), in_fmt=QFormat(3, 4), out_fmt=QFormat(3, 4), rounding="floor",
                         overflow="saturate")
    info = lut._table.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    activations.tanh(np.array([1]), in_fmt=QFormat(3, 4), out_fmt=QFormat(3, 4), rounding="half_up",
                     overflow="wrap")  # another rounding: another table (overflow is applied after)
    assert lut._table.cache_info().misses == 2


def test_bad_inputs():
    with pytest.raises(InputError, match="outside the input format"):
        activations.tanh(np.array([100]), in_fmt=QFormat(2, 2), out_fmt=QFormat(2, 2), rounding="floor",
                         overflow="saturate")
    with pytest.raises(PlanError, match="max_value"):
        activations.leaky_relu(np.array([1]), slope_code=1, slope_fmt=QFormat(0, 7), max_value=0.0,
                               in_fmt=QFormat(2, 2), out_fmt=QFormat(2, 2), rounding="floor", overflow="saturate")
    with pytest.raises(PlanError, match="62 bits"):
        softmax.softmax(np.array([[1]]), in_fmt=QFormat(63, 0), out_fmt=QFormat(2, 2), rounding="floor",
                        overflow="saturate")
