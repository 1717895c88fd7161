"""Kernel results do not depend on the number of Numba threads or on the batch size."""
from __future__ import annotations

import numba
import numpy as np
import pytest

from qsim.fixed import QFormat
from qsim.fixed.counters import OverflowCounter
from qsim.kernels.conv import ConvPath, conv2d
from qsim.kernels.upsample import upsample_bilinear

F_IN, F_W, F_OUT = QFormat(6, 9), QFormat(2, 13), QFormat(4, 11)


def _conv(x, w, depthwise, saturation, counters=None, path=None):
    return conv2d(x, w, np.arange(w.shape[-1] * (w.shape[2] if depthwise else 1)) * 37 - 500,
                  in_fmt=F_IN, w_fmt=F_W, b_fmt=F_IN, out_fmt=F_OUT, acc_bits=34,
                  rounding="half_even", overflow="saturate", acc_overflow="saturate",
                  acc_saturation=saturation, strides=(2, 2), pads="same", depthwise=depthwise,
                  counters=counters, path=path)


CASES = [("conv", False, "final"), ("conv", False, "per_step"), ("depthwise", True, "final"),
         ("depthwise", True, "per_step")]


@pytest.mark.parametrize("name, depthwise, saturation", CASES)
@pytest.mark.parametrize("force_int64", [False, True])
def test_threads_and_batch(name, depthwise, saturation, force_int64):
    rng = np.random.default_rng(0)
    x = rng.integers(F_IN.min_code, F_IN.max_code + 1, (3, 23, 17, 8))
    w = rng.integers(F_W.min_code, F_W.max_code + 1, (3, 3, 8, 1 if depthwise else 12))
    path = ConvPath.INT64_SUMS if force_int64 and saturation == "final" else None
    threads = numba.get_num_threads()
    results = {}
    try:
        for n in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(n)
            c = {"acc": OverflowCounter(), "requant": OverflowCounter()}
            results[n] = (_conv(x, w, depthwise, saturation, c, path), c)
    finally:
        numba.set_num_threads(threads)
    base, counters = results[1]
    assert counters["requant"].events > 0  # the case does overflow: counts are compared too
    for y, c in results.values():
        np.testing.assert_array_equal(y, base)
        assert c == counters
    singles = [_conv(x[i:i + 1], w, depthwise, saturation) for i in range(3)]
    np.testing.assert_array_equal(np.concatenate(singles), base)


def test_bilinear_threads_and_batch():
    rng = np.random.default_rng(1)
    x = rng.integers(-(2**15), 2**15, (3, 7, 5, 6))
    kw = dict(in_fmt=F_IN, out_fmt=F_OUT, rounding="half_up", overflow="wrap")
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = upsample_bilinear(x, (2, 2), **kw)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(upsample_bilinear(x, (2, 2), **kw), one)
    np.testing.assert_array_equal(np.concatenate([upsample_bilinear(x[i:i + 1], (2, 2), **kw) for i in range(3)]), one)


@pytest.mark.parametrize("cin", [16, 48])  # sums inside the tail pass / BLAS
def test_pointwise_threads_and_batch(cin):
    from qsim.kernels.eltwise import relu_spec

    rng = np.random.default_rng(2)
    x = rng.integers(F_IN.min_code, F_IN.max_code + 1, (3, 11, 13, cin))
    w = rng.integers(F_W.min_code, F_W.max_code + 1, (1, 1, cin, 24))
    kw = dict(in_fmt=F_IN, w_fmt=F_W, b_fmt=F_IN, out_fmt=F_OUT, acc_bits=36, rounding="half_even",
              overflow="saturate", acc_overflow="wrap", relu=relu_spec(F_OUT, F_OUT, 6.0, "floor", "saturate"))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        c1 = {"acc": OverflowCounter(), "requant": OverflowCounter(), "act": OverflowCounter()}
        one = conv2d(x, w, None, counters=c1, **kw)
    finally:
        numba.set_num_threads(threads)
    c2 = {"acc": OverflowCounter(), "requant": OverflowCounter(), "act": OverflowCounter()}
    np.testing.assert_array_equal(conv2d(x, w, None, counters=c2, **kw), one)
    assert c1 == c2 and c1["requant"].events > 0
    np.testing.assert_array_equal(np.concatenate([conv2d(x[i:i + 1], w, None, **kw) for i in range(3)]), one)


def test_first_layer_threads_and_batch():
    """3x3 stride-2 conv on 3 channels (27 taps: sums inside the tail pass), like Conv1."""
    rng = np.random.default_rng(3)
    x = rng.integers(F_IN.min_code, F_IN.max_code + 1, (3, 17, 14, 3))
    w = rng.integers(F_W.min_code, F_W.max_code + 1, (3, 3, 3, 32))
    kw = dict(in_fmt=F_IN, w_fmt=F_W, b_fmt=F_IN, out_fmt=F_OUT, acc_bits=33, rounding="half_away",
              overflow="saturate", acc_overflow="saturate", strides=(2, 2), pads="same")
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        c1 = {"acc": OverflowCounter(), "requant": OverflowCounter()}
        one = conv2d(x, w, None, counters=c1, **kw)
    finally:
        numba.set_num_threads(threads)
    c2 = {"acc": OverflowCounter(), "requant": OverflowCounter()}
    np.testing.assert_array_equal(conv2d(x, w, None, counters=c2, **kw), one)
    assert c1 == c2 and c1["acc"].events > 0
    np.testing.assert_array_equal(np.concatenate([conv2d(x[i:i + 1], w, None, **kw) for i in range(3)]), one)
