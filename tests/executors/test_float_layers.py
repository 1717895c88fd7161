"""Float kernels of the MCU-model layers against loop / formula definitions (float64)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsim.graph.ir import resolve_pads
from qsim.kernels import float_layers


def naive_pool(x, pool, strides, pads, kind):
    """Per output pixel: mean / max over the window positions that lie inside the image."""
    n, h, w, c = x.shape
    t, b, l, r = resolve_pads(pads, (h, w), pool, strides)
    oh, ow = (h + t + b - pool[0]) // strides[0] + 1, (w + l + r - pool[1]) // strides[1] + 1
    out = np.zeros((n, oh, ow, c))
    for oy in range(oh):
        for ox in range(ow):
            cells = [x[:, y, xx, :] for i in range(pool[0]) for j in range(pool[1])
                     if 0 <= (y := oy * strides[0] + i - t) < h and 0 <= (xx := ox * strides[1] + j - l) < w]
            out[:, oy, ox, :] = np.mean(cells, axis=0) if kind == "avg" else np.max(cells, axis=0)
    return out


@st.composite
def pool_cases(draw):
    ph, pw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    same = draw(st.booleans())
    h, w = draw(st.integers(1 if same else ph, 9)), draw(st.integers(1 if same else pw, 9))
    x = np.random.default_rng(draw(st.integers(0, 2**31))).normal(size=(draw(st.integers(1, 2)), h, w, 2))
    return x, (ph, pw), (sh, sw), "same" if same else (0, 0, 0, 0), draw(st.sampled_from(["avg", "max"]))


@settings(max_examples=60, deadline=None)
@given(pool_cases())
def test_pools_match_the_loop_definition(case):
    x, pool, strides, pads, kind = case
    fn = float_layers.avg_pool if kind == "avg" else float_layers.max_pool
    np.testing.assert_allclose(fn(x, pool, strides, pads), naive_pool(x, pool, strides, pads, kind), atol=1e-12)


def test_same_average_pool_divides_edge_windows_by_their_in_image_count():
    x = np.arange(9, dtype=np.float64).reshape(1, 3, 3, 1)  # 2x2/s2 "same" on 3x3: pads (0, 1, 0, 1)
    got = float_layers.avg_pool(x, (2, 2), (2, 2), "same")[0, :, :, 0]
    assert got.tolist() == [[(0 + 1 + 3 + 4) / 4, (2 + 5) / 2], [(6 + 7) / 2, 8.0]]
    neg = -np.ones((1, 3, 3, 1))
    assert float_layers.max_pool(neg, (2, 2), (2, 2), "same").max() == -1.0  # padding never wins


def test_dense_any_rank_and_batch_invariant():
    rng = np.random.default_rng(0)
    k, b = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    x = rng.normal(size=(6, 4, 5)).astype(np.float32)
    got = float_layers.dense(x, k, b)
    np.testing.assert_allclose(got, x.astype(np.float64) @ k + b, rtol=1e-5, atol=1e-6)
    for i in range(6):
        assert np.array_equal(float_layers.dense(x[i:i + 1], k, b), got[i:i + 1])


def test_global_pools_reshape_multiply_rescale():
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 5))
    assert float_layers.global_avg_pool(x, True).shape == (2, 1, 1, 5)
    np.testing.assert_allclose(float_layers.global_avg_pool(x, False), x.mean(axis=(1, 2)))
    assert np.array_equal(float_layers.global_max_pool(x, False), x.max(axis=(1, 2)))
    assert np.array_equal(float_layers.reshape(x, (-1,)), x.reshape(2, 60))  # NHWC row-major = Keras Flatten
    gate = float_layers.global_avg_pool(x, True)
    assert np.array_equal(float_layers.multiply(x, gate), x * gate)
    scale, offset = np.arange(1, 6, dtype=np.float64), np.full(5, -1.0)
    assert np.array_equal(float_layers.rescale(x, scale, offset), x * scale - 1)


@pytest.mark.parametrize("fn, formula", [
    (float_layers.tanh, np.tanh),
    (float_layers.hard_sigmoid, lambda v: np.clip(v / 6 + 0.5, 0, 1)),
    (float_layers.hard_swish, lambda v: v * np.minimum(np.maximum(v + 3, 0), 6) / 6),
    (float_layers.swish, lambda v: v / (1 + np.exp(-v))),
])
def test_activations_follow_their_formula(fn, formula):
    v = np.linspace(-8, 8, 161)
    np.testing.assert_allclose(fn(v), formula(v), rtol=1e-12, atol=1e-15)
    assert fn(v.astype(np.float32)).dtype == np.float32


def test_softmax_is_stable_and_normalised():
    x = np.array([[1000.0, 1000.0, -1000.0], [0.0, math.log(3), 0.0]])
    got = float_layers.softmax(x, -1)
    np.testing.assert_allclose(got, [[0.5, 0.5, 0.0], [0.2, 0.6, 0.2]], atol=1e-15)
    y = np.random.default_rng(2).normal(size=(2, 3, 4))
    np.testing.assert_allclose(float_layers.softmax(y, -2).sum(axis=1), 1.0)
