"""The compiled float kernels: the tap-by-tap NumPy formula bit for bit (bytes, so the sign
of zero counts), for any Numba thread count and batch size; a fused ReLU is the same bits
as `float_ops.relu` after the kernel."""
from __future__ import annotations

import numba
import numpy as np
import pytest
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
    _same_bytes(got, _taps_reference(x, k, b, (stride, stride), pads, (dil, dil)))


def _same_bytes(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.ascontiguousarray(got).view(np.uint8), np.ascontiguousarray(want).view(np.uint8))


# the values that tell NumPy's two clip semantics apart: -0.0 (kept by clip with a cap,
# made +0.0 by clip without one), NaN (kept), +-inf, the cap itself
SPECIAL = [-0.0, 0.0, np.nan, np.inf, -np.inf, 6.0, 6.5, -1.0, 1e-30, -1e-30]


@settings(max_examples=60)
@given(st.integers(0, 2**32 - 1), st.sampled_from([np.float32, np.float64]), st.sampled_from([None, 6.0, 0.5]),
       st.booleans(), st.booleans(), st.sampled_from(["conv", "depthwise", "pointwise"]))
def test_fused_relu_is_relu_after_the_kernel(seed, dtype, cap, keep_pre, with_bias, kind):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 6, 7, 4)).astype(dtype)
    x.flat[rng.integers(0, x.size, 12)] = rng.choice(SPECIAL, 12)  # special inputs reach the sums
    x[x == 0] = 0.0
    kh = 1 if kind == "pointwise" else 3
    k = rng.standard_normal((kh, kh, 4, 1 if kind == "depthwise" else 5)).astype(dtype)
    k[0, 0, 0] = -0.0  # products of -0.0 and zeros: partial sums of +-0.0
    b = rng.choice(SPECIAL[:2] + [0.25, -3.0], k.shape[3] * (4 if kind == "depthwise" else 1)).astype(dtype) \
        if with_bias else None
    if kind == "depthwise":
        b = None if b is None else b[:4]
    fn = float_ops.depthwise_conv2d if kind == "depthwise" else float_ops.conv2d
    args = (x, k, b, (1, 2), (1, 1, 1, 1) if kh == 3 else (0, 0, 0, 0), (1, 1))
    with np.errstate(invalid="ignore", over="ignore"):
        want_pre = fn(*args).copy()
        want = float_ops.relu(want_pre, cap)
        got = fn(*args, relu=True, relu_max=cap, keep_pre=keep_pre)
    post, pre = got if keep_pre else (got, None)
    _same_bytes(post, want)
    if keep_pre:
        _same_bytes(pre, want_pre)


@pytest.mark.parametrize("cap", [None, 6.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_activation_on_special_values(cap, dtype):
    """The activation of the bias pass on -0.0, NaN, +-inf...: NumPy's bytes. Not vacuous:
    NumPy's clip keeps -0.0 with a cap and makes it +0.0 without one."""
    v = np.array(SPECIAL * 3, dtype).reshape(3, -1)
    want = float_ops.relu(v.copy(), cap)
    post, pre = float_ops._finish(v.copy(), None, True, cap, True)
    _same_bytes(post, want)
    _same_bytes(pre, v)
    assert np.signbit(want[0, 0]) == (cap is not None)


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
