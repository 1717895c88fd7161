"""Integer pools and products equal their slow references: codes and overflow counts, ties and extremes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kstrategies import OVERFLOWS, ROUNDINGS, assert_tally, codes, qformats

from qsim.errors import InputError
from qsim.fixed import QFormat
from qsim.fixed.counters import OverflowCounter
from qsim.kernels import multiply, pool
from qsim.kernels.ref.multiply import multiply_ref
from qsim.kernels.ref.pool import avg_pool_ref, global_avg_pool_ref, global_max_pool_ref, max_pool_ref

SHAPES = st.tuples(st.integers(1, 2), st.integers(1, 5), st.integers(1, 5), st.integers(1, 3))
WINDOWS = st.tuples(st.tuples(st.integers(1, 3), st.integers(1, 3)), st.tuples(st.integers(1, 3), st.integers(1, 3)),
                    st.sampled_from(["same", "valid"]))
WIDE = st.one_of(qformats(max_word=63), qformats(edge64=True))  # up to the 64-bit signed word


def _fits(shape, pool_size, pads):
    return pads == "same" or (shape[1] >= pool_size[0] and shape[2] >= pool_size[1])


def _check_avg_pool(data, shape, window, f_in, f_out, rounding, overflow):
    pool_size, strides, pads = window
    if not _fits(shape, pool_size, pads):
        return
    x = data.draw(codes(f_in, shape))
    kw = dict(in_fmt=f_in, out_fmt=f_out, rounding=rounding, overflow=overflow)
    c = OverflowCounter()
    got = pool.avg_pool(x, pool_size, strides, pads, counter=c, **kw)
    ref, tally = avg_pool_ref(x, pool_size, strides, pads, **kw)
    np.testing.assert_array_equal(got, ref)
    assert_tally(c, tally)


@given(st.data(), SHAPES, WINDOWS, st.one_of(qformats(), WIDE), st.one_of(qformats(), WIDE), ROUNDINGS, OVERFLOWS)
def test_avg_pool(data, shape, window, f_in, f_out, rounding, overflow):
    _check_avg_pool(data, shape, window, f_in, f_out, rounding, overflow)


@given(st.data(), SHAPES, WINDOWS, qformats(min_word=60, max_word=64, signed=True), WIDE, ROUNDINGS, OVERFLOWS)
def test_avg_pool_wide_words(data, shape, window, f_in, f_out, rounding, overflow):
    """60..64-bit input words, codes biased to the extremes: window sums beyond int64 (Python ints)."""
    _check_avg_pool(data, shape, window, f_in, f_out, rounding, overflow)


@given(st.data(), SHAPES, WINDOWS)
def test_max_pool(data, shape, window):
    pool_size, strides, pads = window
    if not _fits(shape, pool_size, pads):
        return
    fmt = data.draw(WIDE)
    x = data.draw(codes(fmt, shape))
    np.testing.assert_array_equal(pool.max_pool(x, pool_size, strides, pads), max_pool_ref(x, pool_size, strides, pads))


@given(st.data(), SHAPES, st.booleans(), WIDE, WIDE, ROUNDINGS, OVERFLOWS)
def test_global_pools(data, shape, keepdims, f_in, f_out, rounding, overflow):
    """Any formats up to 64-bit words: sums and shifted numerators beyond int64 stay exact."""
    x = data.draw(codes(f_in, shape))
    kw = dict(in_fmt=f_in, out_fmt=f_out, rounding=rounding, overflow=overflow)
    c = OverflowCounter()
    got = pool.global_avg_pool(x, keepdims, counter=c, **kw)
    ref, tally = global_avg_pool_ref(x, keepdims, **kw)
    assert got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)
    assert_tally(c, tally)
    np.testing.assert_array_equal(pool.global_max_pool(x, keepdims), global_max_pool_ref(x, keepdims))


def test_avg_pool_same_edges_divide_by_the_in_image_count():
    """3x3 "same" on a 2x2 image: every window sees all 4 pixels (divide by 4, not 9)."""
    q = QFormat(7, 0)
    x = np.array([1, 2, 3, 5]).reshape(1, 2, 2, 1)  # mean 11/4 = 2.75
    y = pool.avg_pool(x, (3, 3), (1, 1), "same", in_fmt=q, out_fmt=q, rounding="half_up", overflow="saturate")
    assert y.ravel().tolist() == [3, 3, 3, 3]


def test_avg_pool_ties_per_mode():
    """Means of +-2.5 (pool 2 over [2, 3]) and +-0.5 LSB after a change of grid, every mode."""
    q0 = QFormat(7, 0)
    x = np.array([2, 3, -2, -3]).reshape(1, 1, 4, 1)
    table = {}
    for mode in ("floor", "toward_zero", "half_up", "half_even", "half_away"):
        y = pool.avg_pool(x, (1, 2), (1, 2), "valid", in_fmt=q0, out_fmt=q0, rounding=mode, overflow="saturate")
        table[mode] = y.ravel().tolist()
    assert table == {"floor": [2, -3], "toward_zero": [2, -2], "half_up": [3, -2],
                     "half_even": [2, -2], "half_away": [3, -3]}
    # in Q4.3 -> Q6.1: the mean 0.625 of [5, 5] (codes of 0.625) is 1.25 LSB of Q6.1 -> 1
    y = pool.avg_pool(np.full((1, 1, 2, 1), 5), (1, 2), (1, 1), "valid", in_fmt=QFormat(4, 3), out_fmt=QFormat(6, 1),
                      rounding="half_up", overflow="saturate")
    assert y.ravel().tolist() == [1]


def test_avg_pool_counts_overflow_into_a_narrower_act():
    x = np.full((1, 2, 2, 1), 100)  # 100 in Q7.0 -> Q2.0 holds [-4, 3]
    c = OverflowCounter()
    y = pool.global_avg_pool(x, False, in_fmt=QFormat(7, 0), out_fmt=QFormat(2, 0), rounding="floor",
                             overflow="saturate", counter=c)
    assert y.tolist() == [[3]] and (c.events, c.elements, c.max_abs) == (1, 1, 100)


def test_max_pool_padding_never_wins():
    q = QFormat(15, 0)
    x = np.full((1, 3, 3, 1), q.min_code)  # every code the most negative: padding (zeros) must not win
    y = pool.max_pool(x, (2, 2), (2, 2), "same")
    assert y.ravel().tolist() == [q.min_code] * 4


@given(st.data(), st.integers(1, 3), st.integers(1, 4))
def test_pools_and_products_are_batch_invariant(data, n, size):
    f = data.draw(qformats())
    x = data.draw(codes(f, (n, size, size + 1, 2)))
    kw = dict(in_fmt=f, out_fmt=data.draw(qformats()), rounding=data.draw(ROUNDINGS), overflow=data.draw(OVERFLOWS))
    s = data.draw(codes(f, (n, 1, 1, 2)))  # an SE scale per sample
    runs = {
        "avg_pool": lambda x, s: pool.avg_pool(x, (2, 2), (1, 2), "same", **kw),
        "global_avg_pool": lambda x, s: pool.global_avg_pool(x, True, **kw),
        "max_pool": lambda x, s: pool.max_pool(x, (3, 2), (2, 1), "same"),
        "multiply": lambda x, s: multiply.multiply([x, s], [f, f], **{k: v for k, v in kw.items() if k != "in_fmt"}),
    }
    for name, fn in runs.items():
        whole = fn(x, s)
        for b in range(n):
            np.testing.assert_array_equal(whole[b:b + 1], fn(x[b:b + 1], s[b:b + 1]), err_msg=name)


def test_pool_errors_name_the_problem():
    q = QFormat(7, 0)
    with pytest.raises(InputError, match="NHWC"):
        pool.avg_pool(np.zeros((2, 3)), (2, 2), (1, 1), "valid", in_fmt=q, out_fmt=q, rounding="floor",
                      overflow="saturate")
    with pytest.raises(InputError, match="no input element"):
        pool.max_pool(np.zeros((1, 2, 2, 1), np.int64), (1, 1), (1, 1), (3, 0, 0, 0))


# --- multiply ---------------------------------------------------------------------------
@st.composite
def _broadcast_operands(draw):
    rank = draw(st.integers(2, 4))
    full = (draw(st.integers(1, 2)),) + tuple(draw(st.integers(1, 3)) for _ in range(rank - 1))
    n_ops = draw(st.integers(2, 3))
    shapes = [tuple(d if i == 0 or draw(st.booleans()) else 1 for i, d in enumerate(full)) for _ in range(n_ops)]
    return shapes


@given(st.data(), _broadcast_operands(), qformats(), ROUNDINGS, OVERFLOWS, st.booleans())
def test_multiply(data, shapes, f_out, rounding, overflow, wide):
    """wide: three 22..32-bit operands, products beyond int64 (Python ints)."""
    if wide:
        shapes = (shapes * 2)[:3]
    fmts = [data.draw(qformats(min_word=22 if wide else 2, max_word=32)) for _ in shapes]
    xs = [data.draw(codes(f, s)) for f, s in zip(fmts, shapes)]
    kw = dict(out_fmt=f_out, rounding=rounding, overflow=overflow)
    c = OverflowCounter()
    got = multiply.multiply(xs, fmts, counter=c, **kw)
    ref, tally = multiply_ref(xs, fmts, **kw)
    np.testing.assert_array_equal(got, ref)
    assert_tally(c, tally)


def test_multiply_extremes_beyond_int64():
    """Cubes in Q0.31: (-1)**3 = -1 and (1 - 2**-31)**3 = 1 - 3 * 2**-31 + ...: products beyond int64 stay exact."""
    f = QFormat(0, 31)
    x = np.array([[f.min_code, f.max_code]])
    out, tally = multiply_ref([x, x, x], [f] * 3, out_fmt=f, rounding="half_even", overflow="saturate")
    c = OverflowCounter()
    got = multiply.multiply([x, x, x], [f] * 3, out_fmt=f, rounding="half_even", overflow="saturate", counter=c)
    np.testing.assert_array_equal(got, out)
    assert got.tolist() == [[f.min_code, f.max_code - 2]]
    assert_tally(c, tally)


def test_multiply_rounds_once_and_squeeze_excitation_broadcasts():
    q = QFormat(3, 1)  # LSB 0.5
    x = np.array([1, 1]).reshape(1, 1, 2, 1)  # 0.5 everywhere
    s = np.array([1]).reshape(1, 1, 1, 1)  # 0.5: the product 0.25 is a tie on Q3.1's grid
    assert multiply.multiply([x, s], [q, q], out_fmt=q, rounding="half_up", overflow="saturate").ravel().tolist() == [1, 1]
    assert multiply.multiply([x, s], [q, q], out_fmt=q, rounding="half_even", overflow="saturate").ravel().tolist() == [0, 0]
    with pytest.raises(InputError, match="do not broadcast"):
        multiply.multiply([np.zeros((1, 2, 3)), np.zeros((1, 3, 3))], [q, q], out_fmt=q, rounding="floor",
                          overflow="saturate")
    with pytest.raises(InputError, match="batch size"):
        multiply.multiply([np.zeros((2, 3)), np.zeros((1, 3))], [q, q], out_fmt=q, rounding="floor",
                          overflow="saturate")


def test_avg_pool_sums_beyond_int64():
    """Four Q63.0 extremes in one window: the exact sum needs 65 bits (Python ints, zero padding too)."""
    f = QFormat(63, 0)
    x = np.array([f.max_code, f.max_code, f.min_code, 5, f.max_code, 7]).reshape(1, 2, 3, 1)
    for out_fmt in (f, QFormat(10, 53), QFormat(1, 62)):
        for rounding in ("half_even", "toward_zero", "floor"):
            kw = dict(in_fmt=f, out_fmt=out_fmt, rounding=rounding, overflow="saturate")
            c = OverflowCounter()
            got = pool.avg_pool(x, (2, 2), (1, 1), "same", counter=c, **kw)
            ref, tally = avg_pool_ref(x, (2, 2), (1, 1), "same", **kw)
            np.testing.assert_array_equal(got, ref)
            assert_tally(c, tally)
