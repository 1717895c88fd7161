"""Hand-checked vectors: ties at +-0.5 LSB, the most negative code, wrap, the 64-bit edge."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.fixed import (
    OverflowCounter,
    QFormat,
    Rounding,
    accumulate,
    add,
    dequantize,
    mul,
    narrow,
    quantize,
    requantize,
    rescale,
    saturating_sum,
)
from qsim.fixed.modes import shift_round, shift_round_int

# x in LSB units of Q2.5 (lsb = 1/32) -> expected code per rounding mode
TIES = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -0.75, 0.25, -1.0]
EXPECTED = {
    "floor":       [-3, -2, -1, 0, 1, 2, -1, 0, -1],
    "toward_zero": [-2, -1, 0, 0, 1, 2, 0, 0, -1],
    "half_up":     [-2, -1, 0, 1, 2, 3, -1, 0, -1],
    "half_even":   [-2, -2, 0, 0, 2, 2, -1, 0, -1],
    "half_away":   [-3, -2, -1, 1, 2, 3, -1, 0, -1],
}


@pytest.mark.parametrize("rounding", list(EXPECTED))
def test_ties_per_mode(rounding):
    fmt = QFormat.parse("Q2.5")
    x = np.array(TIES) / 32
    got = quantize(x, fmt, rounding=rounding, overflow="saturate")
    assert got.tolist() == EXPECTED[rounding]
    # the same values in integer rescaling: codes of Q2.7 (two extra fraction bits) to Q2.5
    raw = (np.array(TIES) * 4).astype(np.int64)
    assert rescale(raw, 7, fmt, rounding=rounding, overflow="saturate").tolist() == EXPECTED[rounding]
    assert [shift_round_int(int(v), 2, Rounding(rounding)) for v in raw] == EXPECTED[rounding]
    assert shift_round(raw, 2, Rounding(rounding)).tolist() == EXPECTED[rounding]


def test_most_negative_code():
    f8 = QFormat.parse("Q0.7")
    c = OverflowCounter()
    assert quantize(np.array([-1.0, 1.0, -1.0 - 2**-8]), f8, rounding="half_even", overflow="saturate",
                    counter=c).tolist() == [-128, 127, -128]
    assert c.events == 1  # +1.0 does not fit Q0.7; -1.0 does; -1 - 2^-8 rounds (tie, even) to -128
    assert quantize(np.array([1.0]), f8, rounding="floor", overflow="wrap").tolist() == [-128]
    assert dequantize(np.array([-128]), f8).tolist() == [-1.0]
    # -1 * -1 = +1 needs the extra integer bit of the product format
    p, pf = mul(np.array([-128]), f8, np.array([-128]), f8)
    assert (p.tolist(), str(pf)) == ([16384], "Q1.14")
    assert requantize(p, pf, f8, rounding="half_even", overflow="saturate").tolist() == [127]
    assert requantize(p, pf, f8, rounding="half_even", overflow="wrap").tolist() == [-128]
    # toward_zero and half_away must not negate -2**63 in int64
    q64 = np.array([-(2**63)], dtype=np.int64)
    for mode in Rounding:
        assert shift_round(q64, 1, mode).tolist() == [-(2**62)]
        assert shift_round(q64, 64, mode).tolist() == [shift_round_int(-(2**63), 64, mode)]


def test_wrap_and_saturate_vectors():
    raw = np.array([-129, -128, 127, 128, 255, 256, 300, -300])
    assert narrow(raw, 8, True, overflow="wrap").tolist() == [127, -128, 127, -128, -1, 0, 44, -44]
    assert narrow(raw, 8, True, overflow="saturate").tolist() == [-128, -128, 127, 127, 127, 127, 127, -128]
    assert narrow(raw, 8, False, overflow="wrap").tolist() == [127, 128, 127, 128, 255, 0, 44, 212]
    assert narrow(raw, 8, False, overflow="saturate").tolist() == [0, 0, 127, 128, 255, 255, 255, 0]
    assert accumulate(np.array([2**31, -(2**31) - 1]), 32, overflow="wrap").tolist() == [-(2**31), 2**31 - 1]


def test_saturating_sum_is_order_dependent():
    # +100 +100 -100 in an 8-bit saturating register: 100, 127 (clamped), 27; reversed: -100, 0, 100
    t = np.array([100, 100, -100])
    assert saturating_sum(t, 8).tolist() == 27
    assert saturating_sum(t[::-1], 8).tolist() == 100
    assert accumulate(np.array([t.sum()]), 8, overflow="saturate").tolist() == [100]


def test_paper_q9_quantizes_weights():
    fmt = QFormat.parse("Q9")  # 16-bit word, 9 fraction bits
    x = np.array([0.1, -0.1, 63.999, 64.0, -64.0, -64.5])
    got = quantize(x, fmt, rounding="half_up", overflow="saturate")
    assert got.tolist() == [51, -51, 32767, 32767, -32768, -32768]


def test_64_bit_edge():
    f = QFormat.parse("Q63.0")
    big = np.array([-(2.0**63), 2.0**63, 2.0**64, -(2.0**64), 1e30, 9.2e18])
    c = OverflowCounter()
    got = quantize(big, f, rounding="floor", overflow="saturate", counter=c)
    assert got.tolist() == [-(2**63), 2**63 - 1, 2**63 - 1, -(2**63), 2**63 - 1, 9200000000000000000]
    assert (c.events, c.max_abs) == (4, int(1e30))  # the exact integer value of the double 1e30

    def wrap64(v: int) -> int:
        return (v + 2**63) % 2**64 - 2**63

    got = quantize(big, f, rounding="floor", overflow="wrap")
    assert got.tolist() == [-(2**63), -(2**63), 0, 0, wrap64(int(1e30)), 9200000000000000000]
    # Q0.63 <-> Q63.0 requantization across the whole int64 range
    q = np.array([-(2**63), 2**63 - 1, -1, 1], dtype=np.int64)
    assert requantize(q, "Q0.63", "Q63.0", rounding="half_even", overflow="saturate").tolist() == [-1, 1, 0, 0]
    c = OverflowCounter()
    out = requantize(q, "Q63.0", "Q0.63", rounding="floor", overflow="saturate", counter=c)
    assert out.tolist() == [-(2**63), 2**63 - 1, -(2**63), 2**63 - 1]
    assert c.events == 3 and c.max_abs == 2**126  # exact, beyond int64
    assert requantize(q, "Q63.0", "Q0.63", rounding="floor", overflow="wrap").tolist() == [0, -(2**63), -(2**63), -(2**63)]
    assert rescale(np.array([3]), 130, "Q63.0", rounding="half_up", overflow="saturate").tolist() == [0]


def test_add_aligns_fractions():
    s, f = add(np.array([3, -4]), "Q2.1", np.array([1, -8]), "Q0.3")  # 1.5 + 0.125, -2 + -1
    assert (s.tolist(), str(f)) == ([13, -24], "Q3.3")
    s, f = add(np.array([255]), "UQ8.0", np.array([-128]), "Q7.0")
    assert (s.tolist(), str(f)) == ([127], "Q9.0")  # 255 + 127 = 382 needs 9 integer bits


def test_integer_input_is_scaled_exactly():
    got = quantize(np.array([3, -2, 2**40], dtype=np.int64), "Q6.9", rounding="floor", overflow="saturate")
    assert got.tolist() == [3 * 512, -2 * 512, 32767]
