"""kmodel v3 CPU layers: hand-computed vectors from kpu.c's semantics, and fast == slow reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qsim.k210 import kmodel_v3_ops as ops
from qsim.k210 import kmodel_v3_ref as ref

F = np.float32


def f32(*v):
    return np.array(v, np.float32)


def same(a, b) -> bool:
    """Bit-identical float32 (NaN payloads aside) or integer arrays."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        nan = np.isnan(a) & np.isnan(b)
        return a.shape == b.shape and bool(np.all(nan | (a.view(np.uint32) == b.view(np.uint32))))
    return a.shape == b.shape and bool(np.all(a.astype(np.int64) == b.astype(np.int64)))


# ---------------------------------------------------------------- hand vectors
def test_roundf_and_int_cast():
    assert ops.c_roundf(f32(0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997, -1.2)).tolist() == [1, 2, 3, -1, -3, 0, -1]
    # RISC-V fcvt.w.s: saturating, NaN -> INT32_MAX
    assert ops.f32_to_int32(f32(np.nan, 3e9, -3e9, -1.9)).tolist() == [2**31 - 1, 2**31 - 1, -2**31, -1]


@pytest.mark.parametrize("v, s, want", [(5, 1, 3), (4, 1, 2), (6, 2, 2), (-7, 2, -2), (7, 0, 7),
                                        (-4, 1, -2),
                                        # kpu_carry_shift's quirk: an odd negative goes one further down
                                        (-5, 1, -4), (-6, 2, -3)])
def test_carry_shift(v, s, want):
    assert int(ops.carry_shift(np.array([v]), s)[0]) == want == ref.carry_shift(v, s)


def test_quantized_add_hand():
    # equal shifts: ((10-5)*3 + (20+2)*1) >> 1 = 18; 18*5 = 90; carry_shift(90, 2) = 23; + 7 = 30
    args = (-5, 3, 1, 2, 1, 1, 7, 5, 2)
    assert ops.quantized_add([10], [20], *args).tolist() == [30] == ref.quantized_add([10], [20], *args)
    # different shifts: (15 >> 1) + (22 >> 2) = 12; 60 -> carry_shift(60, 2) = 15; + 7 = 22
    args = (-5, 3, 1, 2, 1, 2, 7, 5, 2)
    assert ops.quantized_add([10], [20], *args).tolist() == [22] == ref.quantized_add([10], [20], *args)
    # clamp to 0..255
    assert ops.quantized_add([255, 0], [255, 0], 0, 1000, 0, 0, 1000, 0, -10, 1, 0).tolist() == [255, 0]


def test_quantize_hand():
    # scale 0.5 -> 1/scale = 2; roundf ties away from zero (np.round would give 2 for 2.5)
    x = f32(1.25, 0.75, -0.25, 200.0, np.nan, -np.inf)
    want = [3, 2, 0, 255, 255, 0]  # NaN -> fcvt gives INT32_MAX -> 255
    assert ops.quantize(x, 0.5, 0.0).tolist() == want == ref.quantize(x, 0.5, 0.0)
    assert ops.quantize(f32(10.0), 2.0, 3.0).tolist() == [4]  # (10 - 3) * 0.5 = 3.5 -> 4


def test_dequantize_requantize_channelwise_hand():
    assert same(ops.dequantize([3, 255], 0.5, -1.0), f32(0.5, 126.5))
    assert ops.requantize([0, 1, 255], np.arange(255, -1, -1)).tolist() == [255, 254, 0]
    assert same(ops.channelwise_dequantize([1, 2, 3, 4], 2, f32(1, 0.5), f32(0, 1)), f32(1, 2, 2.5, 3))


def test_global_average_pool_sums_in_order():
    assert same(ops.global_average_pool2d(f32(1, 2, 4, 0.5, 0.5, 0.5), 3, 2), f32(F(7) / F(3), 0.5))
    # float32 running sum: ((1e8 + 1) - 1e8) + 1 = 1 (a pairwise sum would give 0)
    assert same(ops.global_average_pool2d(f32(1e8, 1, -1e8, 1), 4, 1), f32(0.25))


def test_pools_hand():
    x = np.arange(1, 10)
    args = ((3, 3, 1), (2, 2, 1), (2, 2), (2, 2), (1, 1))  # in, out (w, h, c); kernel, stride, padding
    assert ops.quantized_max_pool2d(x.astype(np.uint8), *args).tolist() == [1, 3, 7, 9]
    assert same(ops.average_pool2d(x.astype(np.float32), *args), f32(1, 2.5, 5.5, 7))
    assert ops.quantized_max_pool2d(x.astype(np.uint8), (3, 3, 1), (1, 1, 1), (2, 2), (2, 2), (0, 0)).tolist() == [5]


def test_l2_softmax_logistic_hand():
    assert same(ops.l2_normalization(f32(3, 4)), f32(F(3) * F(0.2), F(4) * F(0.2)))
    assert same(ops.l2_normalization(f32(0, 0)), f32(0, 0))  # the 1e-10f floor
    assert same(ops.softmax(f32(0, 0)), f32(0.5, 0.5))
    # kpu_softmax starts its max at FLT_MIN, so all-negative inputs are not shifted: expf(-100) and
    # expf(-101) are the subnormals 27 and 10 ulps, and the result is 27/37, 10/37 (true: 0.7311, 0.2689)
    assert same(ops.softmax(f32(-100, -101)), f32(F(27) / F(37), F(10) / F(37)))
    assert same(ops.logistic(f32(0, -200, 200)), f32(0.5, 0, 1))


def test_fully_connected_hand():
    w, b = f32(1, 2, 3, 4), f32(0.5, -100)
    assert same(ops.fully_connected(f32(1, 1), w, b, 2, 2, 0), f32(3.5, -93))
    assert same(ops.fully_connected(f32(1, 1), w, b, 2, 2, 1), f32(3.5, 0))
    assert same(ops.fully_connected(f32(2, 2), w, b, 2, 2, 2), f32(6, 0))


def test_flatten_resize_hand():
    assert ops.tensorflow_flatten(np.arange(6, dtype=np.float32), (2, 1, 3)).tolist() == [0, 2, 4, 1, 3, 5]
    assert ops.nearest_indices(3, 2).tolist() == [0, 1]
    assert ops.nearest_indices(2, 5).tolist() == [0, 0, 0, 1, 1]  # 0.4 * o floored
    assert ops.nearest_indices(7, 3).tolist() == [0, 2, 4]  # 2.3333333f * 2 = 4.6666665
    x = np.arange(6, dtype=np.uint8)  # c=1, h=2, w=3
    assert ops.resize_nearest_neighbor(x, (3, 2, 1), 2, 1).tolist() == [0, 1]


# ---------------------------------------------------------------- fast == reference
floats = st.one_of(st.floats(-1e4, 1e4, width=32), st.sampled_from([0.0, -0.0, 0.5, -0.5, 1.5, 2.5, 1e30, -1e30]))
vec = hnp.arrays(np.float32, st.integers(1, 24), elements=floats)
codes = hnp.arrays(np.uint8, st.integers(1, 24))


@settings(max_examples=60)
@given(x=vec, scale=st.floats(0.0009765625, 10, width=32), bias=st.floats(-50, 50, width=32))
def test_quantize_dequantize_match_reference(x, scale, bias):
    assert same(ops.quantize(x, scale, bias), ref.quantize(x, scale, bias))
    q = ops.quantize(x, scale, bias)
    assert same(ops.dequantize(q, scale, bias), ref.dequantize(q, scale, bias))


@settings(max_examples=60)
@given(a=codes, seed=st.integers(0, 2**32 - 1))
def test_quantized_add_matches_reference(a, seed):
    rng = np.random.default_rng(seed)
    b = rng.integers(0, 256, a.size).astype(np.uint8)
    p = [int(rng.integers(-255, 256)), int(rng.integers(-2**20, 2**20)), int(rng.integers(0, 24)),
         int(rng.integers(-255, 256)), int(rng.integers(-2**20, 2**20)), int(rng.integers(0, 24)),
         int(rng.integers(-300, 300)), int(rng.integers(-2**20, 2**20)), int(rng.integers(0, 40))]
    if rng.random() < 0.3:
        p[5] = p[2]  # the equal-shift branch
    assert same(ops.quantized_add(a, b, *p), ref.quantized_add(a, b, *p))


@settings(max_examples=50)
@given(x=vec)
def test_vector_layers_match_reference(x):
    assert same(ops.l2_normalization(x), ref.l2_normalization(x))
    assert same(ops.softmax(x), ref.softmax(x))
    assert same(ops.logistic(x), ref.logistic(x))
    assert same(ops.add(x, x[::-1]), ref.add(x, x[::-1]))


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), iw=st.integers(1, 6), ih=st.integers(1, 6), c=st.integers(1, 3),
       k=st.integers(1, 3), s=st.integers(1, 3), p=st.integers(0, 1))
def test_pools_and_gap_match_reference(seed, iw, ih, c, k, s, p):
    rng = np.random.default_rng(seed)
    ow, oh = max(1, (iw + 2 * p - k) // s + 1), max(1, (ih + 2 * p - k) // s + 1)
    args = ((iw, ih, c), (ow, oh, c), (k, k), (s, s), (p, p))
    q = rng.integers(0, 256, iw * ih * c).astype(np.uint8)
    xf = rng.normal(0, 10, iw * ih * c).astype(np.float32)
    assert same(ops.quantized_max_pool2d(q, *args), ref.pool2d(q, *args, average=False))
    assert same(ops.average_pool2d(xf, *args), ref.pool2d(xf, *args, average=True))
    assert same(ops.global_average_pool2d(xf, iw * ih, c), ref.global_average_pool2d(xf, iw * ih, c))


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), n_in=st.integers(1, 20), n_out=st.integers(1, 5), act=st.integers(0, 2))
def test_fully_connected_matches_reference(seed, n_in, n_out, act):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 3, n_in).astype(np.float32)
    w = rng.normal(0, 1, n_in * n_out).astype(np.float32)
    b = rng.normal(0, 1, n_out).astype(np.float32)
    assert same(ops.fully_connected(x, w, b, n_in, n_out, act), ref.fully_connected(x, w, b, n_in, n_out, act))


@settings(max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), w=st.integers(1, 7), h=st.integers(1, 7), c=st.integers(1, 3),
       ow=st.integers(1, 9), oh=st.integers(1, 9))
def test_movement_layers_match_reference(seed, w, h, c, ow, oh):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, w * h * c).astype(np.float32)
    assert same(ops.tensorflow_flatten(x, (w, h, c)), ref.tensorflow_flatten(x, (w, h, c)))
    assert same(ops.resize_nearest_neighbor(x, (w, h, c), ow, oh), ref.resize_nearest_neighbor(x, (w, h, c), ow, oh))
    q = rng.integers(0, 256, c * 4).astype(np.uint8)
    sc, bi = rng.uniform(0.01, 1, c).astype(np.float32), rng.normal(0, 5, c).astype(np.float32)
    assert same(ops.channelwise_dequantize(q, 4, sc, bi), ref.channelwise_dequantize(q, 4, sc, bi))
    table = rng.integers(0, 256, 256).astype(np.uint8)
    assert same(ops.requantize(q, table), ref.requantize(q, table))
