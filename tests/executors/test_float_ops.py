"""Float kernels against slow, obviously-correct loop references (float64, exact sums order-free
up to 1e-12), on random shapes, strides, dilations, explicit and "same" pads."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qsim.graph.ir import resolve_pads
from qsim.kernels import float_ops


def naive_conv(x, kernel, bias, strides, pads, dilation, depthwise):
    """Direct definition: out[n, oy, ox, o] = sum over taps of x_padded · w (+ bias)."""
    n, h, w, cin = x.shape
    kh, kw = kernel.shape[:2]
    t, b, l, r = resolve_pads(pads, (h, w), (kh, kw), strides, dilation)
    oh = (h + t + b - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    ow = (w + l + r - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    cout = cin * kernel.shape[3] if depthwise else kernel.shape[3]
    out = np.zeros((n, oh, ow, cout))
    for oy in range(oh):
        for ox in range(ow):
            for i in range(kh):
                for j in range(kw):
                    y = oy * strides[0] + i * dilation[0] - t
                    xx = ox * strides[1] + j * dilation[1] - l
                    if not (0 <= y < h and 0 <= xx < w):
                        continue  # zero padding
                    pix = x[:, y, xx, :]
                    if depthwise:
                        for c in range(cin):
                            for m in range(kernel.shape[3]):
                                out[:, oy, ox, c * kernel.shape[3] + m] += pix[:, c] * kernel[i, j, c, m]
                    else:
                        out[:, oy, ox, :] += pix @ kernel[i, j]
    if bias is not None:
        out += bias
    return out


@st.composite
def conv_cases(draw):
    depthwise = draw(st.booleans())
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dil = (1, 1) if max(sh, sw) > 1 else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    cin = draw(st.integers(1, 4))
    last = draw(st.integers(1, 3)) if depthwise else draw(st.integers(1, 5))
    pads = draw(st.one_of(st.just("same"), st.tuples(*[st.integers(0, 3)] * 4)))
    t, b, l, r = resolve_pads(pads, (20, 20), (kh, kw), (sh, sw), dil)
    min_h = max(1, (kh - 1) * dil[0] + 1 - t - b)
    min_w = max(1, (kw - 1) * dil[1] + 1 - l - r)
    h, w = draw(st.integers(min_h, min_h + 7)), draw(st.integers(min_w, min_w + 7))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(draw(st.integers(1, 2)), h, w, cin))
    kernel = rng.normal(size=(kh, kw, cin, last))
    bias = rng.normal(size=cin * last if depthwise else last) if draw(st.booleans()) else None
    return x, kernel, bias, (sh, sw), pads, dil, depthwise


@given(conv_cases())
def test_conv_and_depthwise_match_the_loop_definition(case):
    x, kernel, bias, strides, pads, dil, depthwise = case
    fn = float_ops.depthwise_conv2d if depthwise else float_ops.conv2d
    got = fn(x, kernel, bias, strides, pads, dil)
    want = naive_conv(x, kernel, bias, strides, pads, dil, depthwise)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_same_pads_follow_tensorflow():
    # 3x3 stride 2 on 6: TF pads 0 top, 1 bottom -> outputs centred on rows 1, 3, 5
    x = np.arange(6, dtype=np.float64).reshape(1, 6, 1, 1)
    k = np.zeros((3, 1, 1, 1))
    k[1, 0, 0, 0] = 1.0  # picks the centre row
    out = float_ops.conv2d(x, k, None, (2, 1), "same", (1, 1))
    assert out.ravel().tolist() == [1.0, 3.0, 5.0]


@given(h=st.integers(1, 6), w=st.integers(1, 6), fh=st.integers(1, 4), fw=st.integers(1, 4),
       seed=st.integers(0, 2**31))
def test_bilinear_matches_the_half_pixel_definition(h, w, fh, fw, seed):
    x = np.random.default_rng(seed).normal(size=(1, h, w, 2))
    got = float_ops.upsample_bilinear(x, (fh, fw))

    def sample(size, f, i):  # half-pixel centre, clamped neighbours
        src = (i + 0.5) / f - 0.5
        lo = math.floor(src)
        return max(lo, 0), min(lo + 1, size - 1), src - lo

    for oy in range(h * fh):
        y0, y1, fy = sample(h, fh, oy)
        for ox in range(w * fw):
            x0, x1, fx = sample(w, fw, ox)
            top = x[0, y0, x0] * (1 - fx) + x[0, y0, x1] * fx
            bottom = x[0, y1, x0] * (1 - fx) + x[0, y1, x1] * fx
            # TF (and so the kernel) computes the source coordinate in float32: ~1e-7 relative
            np.testing.assert_allclose(got[0, oy, ox], top * (1 - fy) + bottom * fy, rtol=1e-5, atol=1e-5)


def test_nearest_upsample_repeats():
    x = np.array([[1.0, 2.0]]).reshape(1, 1, 2, 1)
    assert float_ops.upsample_nearest(x, (2, 3))[0, :, :, 0].tolist() == [[1, 1, 1, 2, 2, 2]] * 2


@pytest.mark.parametrize("kw, want", [
    ({}, [0, 0, 0, 0.5, 7]),
    ({"max_value": 6.0}, [0, 0, 0, 0.5, 6]),
    ({"negative_slope": 0.1}, [-0.3, -0.05, 0, 0.5, 7]),
    ({"threshold": 1.0}, [0, 0, 0, 0, 7]),  # Keras: x < threshold -> slope·(x - threshold) = 0
    ({"threshold": 0.25, "negative_slope": 0.5, "max_value": 6.0}, [-1.625, -0.375, -0.125, 0.5, 6]),
])
def test_relu_follows_keras(kw, want):
    x = np.array([-3.0, -0.5, 0.0, 0.5, 7.0])
    np.testing.assert_allclose(float_ops.relu(x, **kw), want)


def test_sigmoid_is_stable_for_large_inputs():
    x = np.array([-1000.0, -20.0, 0.0, 20.0, 1000.0], np.float32)
    with np.errstate(over="raise", invalid="raise"):  # no overflow inside the kernel
        y = float_ops.sigmoid(x)
    assert np.all(np.isfinite(y)) and y.dtype == np.float32
    want = [0.0, 2.0611536e-09, 0.5, 1.0, 1.0]
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=0)


def test_batch_norm_formula():
    x = np.array([1.0, 2.0]).reshape(1, 1, 1, 2)
    out = float_ops.batch_norm(x, np.array([2.0, 1.0]), np.array([0.5, 0.0]), np.array([1.0, 0.0]),
                               np.array([3.0, 0.0]), 1.0)
    assert out.ravel().tolist() == [0.5, 2.0]
