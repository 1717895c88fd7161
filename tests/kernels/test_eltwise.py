"""relu, add, concat, pad, nearest/bilinear upsample, sigmoid: kernels equal their references."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kstrategies import OVERFLOWS, ROUNDINGS, assert_tally, codes, qformats

from qsim.errors import InputError, PlanError
from qsim.fixed import QFormat
from qsim.fixed.counters import OverflowCounter
from qsim.kernels import eltwise, sigmoid, upsample
from qsim.kernels.ref.eltwise import add_ref, concat_ref, pad_ref, relu_ref, upsample_nearest_ref
from qsim.kernels.ref.sigmoid import sigmoid_ref
from qsim.kernels.ref.upsample import upsample_bilinear_ref

SHAPES = st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3))


def _check(got, ref_pair, counter):
    ref, tally = ref_pair
    np.testing.assert_array_equal(got, ref)
    assert_tally(counter, tally)


@given(st.data(), SHAPES, qformats(), qformats(), ROUNDINGS, OVERFLOWS,
       st.sampled_from([None, 6.0, 1.0, 0.75, 6.1]))
def test_relu(data, shape, f_in, f_out, rounding, overflow, max_value):
    x = data.draw(codes(f_in, shape))
    c = OverflowCounter()
    kw = dict(in_fmt=f_in, out_fmt=f_out, max_value=max_value, rounding=rounding, overflow=overflow)
    _check(eltwise.relu(x, counter=c, **kw), relu_ref(x, **kw), c)


def test_relu6_by_hand():
    q69 = QFormat.parse("Q6.9")
    x = np.array([-5, 0, 3072, 3073, 32767])  # 6.0 = 3072 in Q6.9
    y = eltwise.relu(x, in_fmt=q69, out_fmt=q69, max_value=6.0, rounding="floor", overflow="saturate")
    assert y.tolist() == [0, 0, 3072, 3072, 3072]
    # 6.0 is not representable in Q1.14 (max 1.99994): clip at max_code, counted at the site
    q114 = QFormat.parse("Q1.14")
    c = OverflowCounter()
    y = eltwise.relu(x, in_fmt=q69, out_fmt=q114, max_value=6.0, rounding="floor", overflow="saturate", counter=c)
    assert y.tolist() == [0, 0, q114.max_code, q114.max_code, q114.max_code]
    assert c.events == 3


@given(st.data(), SHAPES, st.lists(qformats(), min_size=2, max_size=3), qformats(), ROUNDINGS, OVERFLOWS)
def test_add(data, shape, fmts, f_out, rounding, overflow):
    xs = [data.draw(codes(f, shape)) for f in fmts]
    c = OverflowCounter()
    kw = dict(out_fmt=f_out, rounding=rounding, overflow=overflow)
    _check(eltwise.add(xs, fmts, counter=c, **kw), add_ref(xs, fmts, **kw), c)


def test_add_rounds_once_by_hand():
    """0.25 (Q1.2) + 0.125 (Q1.3) = 0.375 -> Q1.1 half_even: 0.5 (code 1); per-operand rounding would give 0.0 + 0.0."""
    y = eltwise.add([np.array([1]), np.array([1])], [QFormat(1, 2), QFormat(1, 3)], out_fmt=QFormat(1, 1),
                    rounding="half_even", overflow="saturate")
    assert y.tolist() == [1]


@given(st.data(), st.lists(st.tuples(qformats(), st.integers(1, 3)), min_size=1, max_size=3), qformats(),
       ROUNDINGS, OVERFLOWS)
def test_concat(data, parts, f_out, rounding, overflow):
    xs = [data.draw(codes(f, (1, 2, 3, ch))) for f, ch in parts]
    fmts = [f for f, _ in parts]
    c = OverflowCounter()
    kw = dict(out_fmt=f_out, rounding=rounding, overflow=overflow)
    _check(eltwise.concat(xs, fmts, counter=c, **kw), concat_ref(xs, fmts, **kw), c)


@given(st.data(), SHAPES, st.tuples(*[st.integers(0, 2)] * 4))
def test_pad(data, shape, pads):
    x = data.draw(codes(QFormat(3, 4), shape))
    np.testing.assert_array_equal(eltwise.pad(x, pads), pad_ref(x, pads))


@given(st.data(), SHAPES, st.tuples(st.integers(1, 3), st.integers(1, 3)), qformats(), qformats(), ROUNDINGS, OVERFLOWS)
def test_upsample_nearest(data, shape, size, f_in, f_out, rounding, overflow):
    x = data.draw(codes(f_in, shape))
    c = OverflowCounter()
    kw = dict(in_fmt=f_in, out_fmt=f_out, rounding=rounding, overflow=overflow)
    _check(eltwise.upsample_nearest(x, size, counter=c, **kw), upsample_nearest_ref(x, size, **kw), c)


@given(st.data(), SHAPES, st.tuples(st.sampled_from([1, 2, 4]), st.sampled_from([1, 2, 4])),
       qformats(), qformats(), ROUNDINGS, OVERFLOWS)
def test_upsample_bilinear(data, shape, size, f_in, f_out, rounding, overflow):
    x = data.draw(codes(f_in, shape))
    c = OverflowCounter()
    kw = dict(in_fmt=f_in, out_fmt=f_out, rounding=rounding, overflow=overflow)
    _check(upsample.upsample_bilinear(x, size, counter=c, **kw), upsample_bilinear_ref(x, size, **kw), c)


def test_bilinear_2x_by_hand():
    """[0, 4] -> [0, 1, 3, 4] (weights 0.25/0.75, edges clamped); 1D along W."""
    f = QFormat(7, 0)
    x = np.array([0, 4]).reshape(1, 1, 2, 1)
    y = upsample.upsample_bilinear(x, (1, 2), in_fmt=f, out_fmt=f, rounding="half_even", overflow="saturate")
    assert y.ravel().tolist() == [0, 1, 3, 4]


def test_bilinear_matches_tensorflow_resize(tf):
    """Integer-valued input at frac 0 and a wide output grid: exact equality with tf.image.resize."""
    rng = np.random.default_rng(3)
    x = rng.integers(-100, 100, (1, 3, 5, 2))
    f_out = QFormat(15, 4)  # 4 extra fraction bits hold every 2x bilinear value exactly
    y = upsample.upsample_bilinear(x, (2, 2), in_fmt=QFormat(15, 0), out_fmt=f_out, rounding="floor",
                                   overflow="saturate")
    want = tf.image.resize(x.astype(np.float64), (6, 10), method="bilinear").numpy()
    np.testing.assert_array_equal(y / 16.0, want)


def test_bilinear_factor_3_is_a_plan_error():
    with pytest.raises(PlanError, match="powers of two"):
        upsample.upsample_bilinear(np.zeros((1, 2, 2, 1), np.int64), (3, 3), in_fmt=QFormat(3, 4),
                                   out_fmt=QFormat(3, 4), rounding="floor", overflow="saturate")


@settings(max_examples=60)
@given(st.data(), st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 2)),
       qformats(max_word=20), qformats(max_word=20), ROUNDINGS, OVERFLOWS)
def test_sigmoid(data, shape, f_in, f_out, rounding, overflow):
    x = data.draw(codes(f_in, shape))
    c = OverflowCounter()
    kw = dict(in_fmt=f_in, out_fmt=f_out, rounding=rounding, overflow=overflow)
    _check(sigmoid.sigmoid(x, counter=c, **kw), sigmoid_ref(x, **kw), c)


def test_sigmoid_by_hand():
    """sigmoid(0) = 0.5 exactly: a tie on an integer grid; UQ0.8 cannot hold 1.0."""
    for rounding, want in [("half_even", 0), ("half_up", 1), ("half_away", 1), ("floor", 0)]:
        y = sigmoid.sigmoid(np.array([0]), in_fmt=QFormat(3, 4), out_fmt=QFormat(1, 0),
                            rounding=rounding, overflow="saturate")
        assert y.tolist() == [want], rounding
    c = OverflowCounter()
    y = sigmoid.sigmoid(np.array([32767]), in_fmt=QFormat(6, 9), out_fmt=QFormat(0, 8, signed=False),
                        rounding="half_up", overflow="saturate", counter=c)
    assert y.tolist() == [255] and c.events == 1


def test_bad_operands_are_input_errors():
    f = QFormat(3, 4)
    with pytest.raises(InputError, match="equal shapes"):
        eltwise.add([np.zeros((1, 2, 2, 1), np.int64), np.zeros((1, 2, 3, 1), np.int64)], [f, f],
                    out_fmt=f, rounding="floor", overflow="saturate")
    with pytest.raises(InputError, match="channel axis"):
        eltwise.concat([np.zeros((1, 2, 2, 1), np.int64), np.zeros((1, 3, 2, 1), np.int64)], [f, f],
                       out_fmt=f, rounding="floor", overflow="saturate")
