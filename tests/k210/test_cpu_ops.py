"""CPU-side kmodel ops: hand vectors and a Python-int reference for quantized_binary."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from qsim.k210 import cpu_ops


def _mcs_ref(value: int, mul: int, shift: int) -> int:
    prod = value * mul
    r = (prod + (1 << (shift - 1))) >> shift if shift else prod
    return ((r + (1 << 31)) % (1 << 32)) - (1 << 31)


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


@given(a=st.lists(st.integers(0, 255), min_size=1, max_size=6), seed=st.integers(0, 10**6),
       op=st.sampled_from(["add", "sub", "mul", "div", "min", "max"]))
def test_quantized_binary_matches_python_ints(a, seed, op):
    rng = np.random.default_rng(seed)
    n = len(a)
    b = rng.integers(0, 256, 1).tolist()  # broadcast operand of shape (1,1,1,1)
    p = dict(a_offset=int(rng.integers(-255, 256)), a_mul=int(rng.integers(1, 1 << 15)), a_shift=int(rng.integers(0, 20)),
             b_offset=int(rng.integers(1, 256)), b_mul=int(rng.integers(1, 1 << 15)), b_shift=int(rng.integers(0, 8)),
             out_offset=int(rng.integers(0, 256)), out_mul=int(rng.integers(1, 1 << 30)), out_shift=int(rng.integers(20, 40)))
    got = cpu_ops.quantized_binary(np.array(a, np.uint8), np.array(b, np.uint8), op, (1, 1, n, 1), (1, 1, 1, 1),
                                   (1, 1, n, 1), **p)
    expected = []
    for qa in a:
        x = _mcs_ref(qa + p["a_offset"], p["a_mul"], p["a_shift"])
        y = _mcs_ref(b[0] + p["b_offset"], p["b_mul"], p["b_shift"])
        r = {"add": x + y, "sub": x - y, "mul": x * y, "min": min(x, y), "max": max(x, y),
             "div": _trunc_div(x + _trunc_div(y, 2), y) if y else None}[op]
        if r is None:
            return
        r = ((r + (1 << 31)) % (1 << 32)) - (1 << 31)
        expected.append(min(max(_mcs_ref(r, p["out_mul"], p["out_shift"]) + p["out_offset"], 0), 255))
    assert got.tolist() == expected


def test_carry_shift_is_half_up():
    assert cpu_ops.carry_shift_half_up(np.array([2, 6, -2, -6, -7]), 2).tolist() == [1, 2, 0, -1, -2]


def test_quantize_rounds_half_away_in_float32():
    x = np.array([0.5, 1.5, 2.5, -0.5, 254.5, 300.0, -3.0], np.float32)
    assert cpu_ops.quantize(x, 0, 1.0).tolist() == [1, 2, 3, 0, 255, 255, 0]
    # float32 product then float32 sum, then roundf: 0.1f*5 + 0 = 0.5f -> 1
    assert cpu_ops.quantize(np.array([0.1], np.float32), 0, 5.0).tolist() == [1]
    assert cpu_ops.quantize(np.array([1.0], np.float32), 127, 47.6370964050293).tolist() == [175]


def test_dequantize_uses_float32_reciprocal():
    q = np.array([0, 128, 255], np.uint8)
    got = cpu_ops.dequantize(q, 128, 51.57114791870117)
    div = np.float32(1) / np.float32(51.57114791870117)
    assert got.dtype == np.float32
    assert got.tolist() == [np.float32(-128) * div, 0.0, np.float32(127) * div]


def test_reduce_sum_is_sequential_float32():
    x = np.array([1e8, 1.0, 1.0, 1.0, 1.0, -1e8, 3.0, 0.0], np.float32)
    seq = np.float32(0)
    for v in x:
        seq = np.float32(seq + v)
    got = cpu_ops.reduce(x, "sum", (1, 1, 1, 8), (1, 1, 1, 1), 0.0)
    assert got.tolist() == [float(seq)] and float(seq) == 3.0  # the 1.0s vanish next to 1e8
    mx = cpu_ops.reduce(np.array([1, 5, 2, 7], np.float32), "max", (1, 1, 2, 2), (1, 1, 2, 1), -3.4e38)
    assert mx.tolist() == [5.0, 7.0]


def test_concat_transpose_pad():
    a = np.arange(4, dtype=np.uint8)
    b = np.arange(10, 16, dtype=np.uint8)
    # outer 2, inner 1 byte: rows of 2 and 3 bytes interleaved
    assert cpu_ops.concat([a, b], [2, 3], 1, 2).tolist() == [0, 1, 10, 11, 12, 2, 3, 13, 14, 15]
    x = np.arange(6, dtype=np.uint8)
    assert cpu_ops.transpose(x, (1, 2, 3, 1), (0, 2, 3, 1)).tolist() == [0, 3, 1, 4, 2, 5]
    assert cpu_ops.pad(np.ones(2, np.uint8), (1, 1, 1, 2), ((0, 0), (0, 0), (0, 1), (0, 0)), 0).tolist() == [1, 1, 0, 0]
