"""The compiled float depthwise conv: the tap-by-tap NumPy formula bit for bit, for any
Numba thread count and batch size."""
from __future__ import annotations

import numba
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qsim.graph.ir import resolve_pads
from qsim.kernels import float_ops


def _taps_reference(x, kernel, bias, strides, pads, dilation):
    """out = sum over taps (row-major) of shifted input x kernel tap, then + bias (NumPy)."""
    kernel = kernel.astype(x.dtype)
    kh, kw, c, mult = kernel.shape
    t, b, l, r = resolve_pads(pads, x.shape[1:3], (kh, kw), strides, dilation)
    xp = np.zeros((x.shape[0], x.shape[1] + t + b, x.shape[2] + l + r, c), x.dtype)
    xp[:, t:t + x.shape[1], l:l + x.shape[2]] = x
    oh = (xp.shape[1] - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    ow = (xp.shape[2] - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    out = np.zeros((x.shape[0], oh, ow, c, mult), x.dtype)
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dilation[0], j * dilation[1]
            view = xp[:, y0:y0 + (oh - 1) * strides[0] + 1:strides[0], x0:x0 + (ow - 1) * strides[1] + 1:strides[1]]
            out += view[..., None] * kernel[i, j]
    out = out.reshape(x.shape[0], oh, ow, c * mult)
    return out + bias.astype(x.dtype) if bias is not None else out


@settings(max_examples=80)
@given(st.integers(0, 2**32 - 1), st.sampled_from([np.float32, np.float64]), st.integers(1, 3),
       st.integers(1, 3), st.integers(1, 2), st.integers(1, 2), st.booleans())
def test_matches_tap_by_tap_formula(seed, dtype, kh, mult, stride, dil, with_bias):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 7, 9, 5)).astype(dtype)
    k = rng.standard_normal((kh, 3, 5, mult)).astype(dtype)
    b = rng.standard_normal(5 * mult).astype(dtype) if with_bias else None
    pads = (dil, dil, dil, 0)
    got = float_ops.depthwise_conv2d(x, k, b, (stride, stride), pads, (dil, dil))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, _taps_reference(x, k, b, (stride, stride), pads, (dil, dil)))


def test_threads_and_batch():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 17, 13, 24)).astype(np.float32)
    k = rng.standard_normal((3, 3, 24, 1)).astype(np.float32)
    saved = numba.get_num_threads()
    try:
        results = []
        for n in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(n)
            results.append(float_ops.depthwise_conv2d(x, k, None, (2, 2), "same"))
    finally:
        numba.set_num_threads(saved)
    for r in results:
        np.testing.assert_array_equal(r, results[0])
    singles = [float_ops.depthwise_conv2d(x[i:i + 1], k, None, (2, 2), "same") for i in range(3)]
    np.testing.assert_array_equal(np.concatenate(singles), results[0])
