"""The fast paths' special cases against the Python-int reference: the three-tap rows of
depthwise 3x3 windows, the four-channel steps (and zero skips) of direct 1x1 sums, and the
cached weight forms (`conv.derived`)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from kstrategies import OVERFLOWS, ROUNDINGS, assert_tally, codes

from qsim.fixed import QFormat
from qsim.fixed.counters import OverflowCounter
from qsim.kernels import conv as conv_mod
from qsim.kernels.conv import conv2d
from qsim.kernels.ref.conv import conv2d_ref

F_IN, F_W, F_B, F_OUT = QFormat(6, 9), QFormat(3, 12), QFormat(6, 9), QFormat(5, 10)


def _check(x, w, bias, **kw):
    kw = {"in_fmt": F_IN, "w_fmt": F_W, "b_fmt": F_B, "out_fmt": F_OUT, "acc_bits": 34, **kw}
    counters = {"acc": OverflowCounter("acc"), "requant": OverflowCounter("requant")}
    got = conv2d(x, w, bias, counters=counters, **kw)
    ref, tallies = conv2d_ref(x, w, bias, **kw)
    np.testing.assert_array_equal(got, ref)
    assert_tally(counters["acc"], tallies["acc"])
    assert_tally(counters["requant"], tallies["requant"])


@settings(max_examples=60)
@given(st.data(), st.integers(1, 3), st.integers(3, 11), st.integers(1, 4), st.integers(1, 2), st.integers(1, 2),
       st.sampled_from([(1, 1, 1, 1), (0, 0, 0, 0), (1, 0, 2, 1), (2, 2, 2, 2)]), ROUNDINGS, OVERFLOWS)
def test_depthwise_3x3_rows(data, h, w, c, stride, dil, pads, rounding, overflow):
    """Wide rows: interior pixels take the three-taps-at-once pass, edges the tap-by-tap one."""
    span = 2 * dil + 1
    if h + pads[0] + pads[1] < span or w + pads[2] + pads[3] < span:
        pads = (dil, dil, dil, dil)
    x = data.draw(codes(F_IN, (1, h, w, c)))
    wt = data.draw(codes(F_W, (3, 3, c, 1)))
    bias = data.draw(codes(F_B, (c,)))
    _check(x, wt, bias, strides=(stride, stride), pads=pads, dilation=(dil, dil), depthwise=True,
           rounding=rounding, overflow=overflow, acc_overflow="saturate")


@settings(max_examples=40)
@given(st.data(), st.integers(5, 9), st.integers(5, 9), st.integers(1, 5), st.integers(1, 2), st.integers(1, 2),
       st.sampled_from([(1, 1, 1, 1), (0, 0, 0, 0), (2, 0, 0, 2)]), ROUNDINGS, OVERFLOWS)
def test_depthwise_3x3_interior_nine_taps(data, h, w, c, stride, dil, pads, rounding, overflow):
    """Maps tall enough for interior windows (all nine taps in one pass) beside edge ones,
    with extreme codes (min/max products) mixed in."""
    elem = st.sampled_from([F_IN.min_code, F_IN.max_code, 0, 1, -1]) | st.integers(F_IN.min_code, F_IN.max_code)
    x = np.array(data.draw(st.lists(elem, min_size=h * w * c, max_size=h * w * c)), dtype=np.int64).reshape(1, h, w, c)
    welem = st.sampled_from([F_W.min_code, F_W.max_code]) | st.integers(F_W.min_code, F_W.max_code)
    wt = np.array(data.draw(st.lists(welem, min_size=9 * c, max_size=9 * c)), dtype=np.int64).reshape(3, 3, c, 1)
    bias = data.draw(codes(F_B, (c,)))
    _check(x, wt, bias, strides=(stride, stride), pads=pads, dilation=(dil, dil), depthwise=True,
           rounding=rounding, overflow=overflow, acc_overflow=data.draw(OVERFLOWS))


@settings(max_examples=60)
@given(st.data(), st.integers(4, 9), st.integers(1, 5), ROUNDINGS, OVERFLOWS)
def test_pointwise_four_channel_steps_and_zero_runs(data, cin, cout, rounding, overflow):
    """Direct 1x1 sums: channel counts around multiples of 4, inputs with runs of zeros."""
    elem = st.sampled_from([0, 0, 0, F_IN.min_code, F_IN.max_code, 1, -1])
    x = np.array(data.draw(st.lists(elem, min_size=6 * cin, max_size=6 * cin)), dtype=np.int64).reshape(1, 2, 3, cin)
    wt = data.draw(codes(F_W, (1, 1, cin, cout)))
    assert cin <= conv_mod.DIRECT_MAX_K
    _check(x, wt, None, rounding=rounding, overflow=overflow, acc_overflow="wrap")


def test_derived_forms_are_cached_for_read_only_weights_only():
    calls = []

    def make(w):
        calls.append(1)
        return w.astype(np.float64)

    w = np.arange(12, dtype=np.int64).reshape(3, 4)
    cache: dict = {}
    conv_mod.derived(w, "f", make, cache)
    conv_mod.derived(w, "f", make, cache)
    assert len(calls) == 2  # writeable: recomputed each time (it may have changed)
    w.setflags(write=False)
    a = conv_mod.derived(w, "f", make, cache)
    b = conv_mod.derived(w, "f", make, cache)
    assert len(calls) == 3 and a is b
    conv_mod.derived(w, "f", make, None)
    assert len(calls) == 4  # no cache given (no program owns one): nothing is kept anywhere
    np.testing.assert_array_equal(conv_mod.float_matrix(w, (4, 3)), w.reshape(4, 3))


def test_read_only_weights_give_the_same_codes():
    rng = np.random.default_rng(5)
    x = rng.integers(F_IN.min_code, F_IN.max_code + 1, (1, 6, 7, 5))
    w = rng.integers(F_W.min_code, F_W.max_code + 1, (3, 3, 5, 4))
    kw = dict(in_fmt=F_IN, w_fmt=F_W, b_fmt=F_B, out_fmt=F_OUT, acc_bits=32, rounding="half_even",
              overflow="saturate", acc_overflow="saturate", pads="same")
    first = conv2d(x, w, None, **kw)
    w.setflags(write=False)
    np.testing.assert_array_equal(conv2d(x, w, None, **kw), first)
    np.testing.assert_array_equal(conv2d(x, w, None, **kw), first)  # from the cache


@settings(max_examples=6, deadline=None)
@given(st.data(), st.sampled_from([1, 2]), st.sampled_from([(1, 1), (3, 3)]), ROUNDINGS, OVERFLOWS)
def test_blas_sums_in_row_blocks(data, threads, kernel, rounding, overflow):
    """BLAS paths sum one block of rows at a time, each block's tail right after it: with
    more rows than a block (and a ragged last block), codes and counters are the reference's,
    for 1 and 2 GEMM threads, in float64 and in float32 (words of 8 bits)."""
    from qsim.kernels import blas

    kh, kw = kernel
    rows = blas.ROWS_PER_BLOCK * 2 + 37  # > one block per thread, ragged end
    h, w = 1, rows
    cin = conv_mod.DIRECT_MAX_K + 1 if kh == 1 else 3  # K > DIRECT_MAX_K: the BLAS path
    saved = blas.get_threads()
    try:
        blas.set_threads(threads)
        for f_in, f_w, f_out in ((F_IN, F_W, F_OUT), (QFormat(2, 5), QFormat(1, 6), QFormat(3, 4))):
            x = data.draw(codes(f_in, (1, h + kh - 1, w, cin)))
            wt = data.draw(codes(f_w, (kh, kw, cin, 3)))
            kw_ = dict(in_fmt=f_in, w_fmt=f_w, b_fmt=f_in, out_fmt=f_out, acc_bits=24 if f_in.word_bits == 8 else 34,
                       rounding=rounding, overflow=overflow, acc_overflow=overflow,
                       pads=(0, 0, kw // 2, kw // 2))
            paths = conv_mod.conv_paths(x, wt, depthwise=False, in_fmt=f_in, strides=(1, 1), pads=kw_["pads"],
                                        per_step=False, in_tail=True, bias_max=0)
            assert paths[0] in (conv_mod.ConvPath.FLOAT32_SUMS, conv_mod.ConvPath.FLOAT64_SUMS), paths
            if f_in.word_bits == 8:
                assert paths[0] is conv_mod.ConvPath.FLOAT32_SUMS
            _check(x, wt, None, **kw_)
    finally:
        blas.set_threads(saved)
