"""Integer dense (`conv.dense`): a 1x1 conv at every position of any rank, equal to the Python-int reference.

The reference is `conv2d_ref` applied to each position's feature vector on its own (one
(1, 1, 1, Cin) image per position), so the view of (N, ..., Cin) as a batch of pixels is
checked too; every path of the conv machinery gives the same codes and counts.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kstrategies import OVERFLOWS, ROUNDINGS, assert_tally, codes, qformats

from qsim.errors import InputError
from qsim.fixed import QFormat
from qsim.fixed.counters import OverflowCounter
from qsim.kernels import eltwise
from qsim.kernels.conv import conv_paths, dense
from qsim.kernels.ref.common import Tally
from qsim.kernels.ref.conv import conv2d_ref
from qsim.kernels.ref.eltwise import relu_ref


@st.composite
def dense_cases(draw, depthwise=None):
    depthwise = draw(st.booleans()) if depthwise is None else depthwise
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))  # (N,), (N, T), (N, T, U)
    cin = draw(st.integers(1, 30))  # beyond DIRECT_MAX_K: the BLAS path too
    cout = cin if depthwise else draw(st.integers(1, 4))
    in_fmt = draw(qformats(max_word=16))
    w_fmt = draw(qformats(max_word=12, signed=True))
    acc_frac = in_fmt.frac_bits + w_fmt.frac_bits
    b_fmt = draw(qformats(max_word=16, signed=True, max_frac=acc_frac))
    acc_min = max(in_fmt.word_bits + w_fmt.word_bits, b_fmt.word_bits + acc_frac - b_fmt.frac_bits)
    x = draw(codes(in_fmt, lead + (cin,)))
    w = draw(codes(w_fmt, (1, 1, cin, 1) if depthwise else (cin, cout)))
    bias = draw(st.one_of(st.none(), codes(b_fmt, (cout,))))
    kw = dict(in_fmt=in_fmt, w_fmt=w_fmt, b_fmt=b_fmt, out_fmt=draw(qformats(max_word=16)),
              acc_bits=draw(st.integers(acc_min, acc_min + 6)), depthwise=depthwise,
              rounding=draw(ROUNDINGS), overflow=draw(OVERFLOWS), acc_overflow=draw(OVERFLOWS),
              acc_saturation=draw(st.sampled_from(["final", "per_step"])))
    return x, w, bias, kw


def dense_ref(x, w, bias, **kw):
    """Position by position: conv2d_ref of a 1x1 image holding that position's features."""
    w4 = w if w.ndim == 4 else w.reshape((1, 1) + w.shape)
    tallies = {"acc": Tally(), "requant": Tally()}
    out = None
    for idx in np.ndindex(*x.shape[:-1]):
        y, t = conv2d_ref(x[idx].reshape(1, 1, 1, -1), w4, bias, **kw)
        out = np.zeros(x.shape[:-1] + y.shape[-1:], np.int64) if out is None else out
        out[idx] = y.reshape(-1)
        for site in tallies:
            tallies[site].events += t[site].events
            tallies[site].elements += t[site].elements
            tallies[site].peak = max(tallies[site].peak, t[site].peak)
    return out, tallies


def _check(case, path=None):
    x, w, bias, kw = case
    counters = {"acc": OverflowCounter(), "requant": OverflowCounter()}
    got = dense(x, w, bias, counters=counters, path=path, **kw)
    ref, tallies = dense_ref(x, w, bias, **kw)
    np.testing.assert_array_equal(got, ref)
    for site in tallies:
        assert_tally(counters[site], tallies[site])


@given(dense_cases())
def test_dense_matches_reference(case):
    _check(case)


@given(dense_cases(), st.data())
def test_every_path_gives_the_same_codes_and_counts(case, data):
    x, w, bias, kw = case
    w4 = w if w.ndim == 4 else w.reshape((1, 1) + w.shape)
    align = kw["in_fmt"].frac_bits + kw["w_fmt"].frac_bits - kw["b_fmt"].frac_bits
    paths = conv_paths(x.reshape(-1, 1, 1, x.shape[-1]), w4, depthwise=kw["depthwise"], in_fmt=kw["in_fmt"],
                       strides=(1, 1), pads=(0, 0, 0, 0),
                       per_step=kw["acc_saturation"] == "per_step" and kw["acc_overflow"] == "saturate",
                       in_tail=0 <= align + kw["b_fmt"].frac_bits - kw["out_fmt"].frac_bits <= 62,
                       bias_max=0 if bias is None else int(np.abs(bias).max(initial=0)) << align)
    _check(case, data.draw(st.sampled_from(paths)))


@given(dense_cases(depthwise=False), st.sampled_from([None, 6.0]))
def test_fused_relu_equals_relu_after(case, max_value):
    x, w, bias, kw = case
    relu_fmt = QFormat(3, 6)
    spec = eltwise.relu_spec(kw["out_fmt"], relu_fmt, max_value, "half_up", "saturate")
    post, pre = dense(x, w, bias, relu=spec, keep_pre=True, **kw)
    want_pre, _ = dense_ref(x, w, bias, **kw)
    want_post, _ = relu_ref(want_pre, in_fmt=kw["out_fmt"], out_fmt=relu_fmt, max_value=max_value,
                            rounding="half_up", overflow="saturate")
    np.testing.assert_array_equal(pre, want_pre)
    np.testing.assert_array_equal(post, want_post)
    assert post.shape == x.shape[:-1] + want_pre.shape[-1:]


def test_extremes_wide_words():
    """Q8.23 inputs at the ends of the range, weights +-1.0, a 64-bit accumulator: sums beyond 2**53
    (the int64 path), exact; wider products than 2**62 are a PlanError (conv's bound)."""
    f = QFormat(8, 23)
    x = np.array([[f.min_code, f.max_code, f.min_code]])
    w = np.array([[-(2**23)], [2**23], [-(2**23)]])
    kw = dict(in_fmt=f, w_fmt=f, b_fmt=f, out_fmt=f, acc_bits=64, depthwise=False, rounding="half_even",
              overflow="saturate", acc_overflow="saturate")
    _check((x, w, np.array([f.max_code]), kw))


def test_dense_needs_features_last():
    f = QFormat(3, 4)
    with pytest.raises(InputError, match="rank >= 2"):
        dense(np.zeros(3), np.zeros((3, 2), np.int64), None, in_fmt=f, w_fmt=f, b_fmt=f, out_fmt=f, acc_bits=32,
              rounding="floor", overflow="saturate", acc_overflow="saturate")


def test_batch_invariance():
    f = QFormat(3, 4)
    rng = np.random.default_rng(0)
    x = rng.integers(f.min_code, f.max_code + 1, (5, 2, 40))
    w = rng.integers(-64, 64, (40, 3))
    kw = dict(in_fmt=f, w_fmt=f, b_fmt=f, out_fmt=f, acc_bits=24, rounding="half_even", overflow="saturate",
              acc_overflow="wrap")
    whole = dense(x, w, None, **kw)
    for b in range(5):
        np.testing.assert_array_equal(whole[b:b + 1], dense(x[b:b + 1], w, None, **kw))
