"""Slow, obviously-correct Python-int twins of `qsim.tflite.arith` and `qsim.tflite.ops`.

Each function states the TFLite reference contract with Python ints and
`fractions.Fraction` (exact rationals), one element at a time, with no bit tricks,
so the vectorised kernels can be checked against them by hypothesis (tests/tflite).
"""
from __future__ import annotations

import math
from fractions import Fraction

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def round_away(v: Fraction) -> int:
    """Nearest integer to an exact rational, halves away from zero."""
    f = math.floor(abs(v) + Fraction(1, 2))
    return f if v >= 0 else -f


def round_up(v: Fraction) -> int:
    """Nearest integer, halves toward +inf (``(n + half) >> s``)."""
    return math.floor(v + Fraction(1, 2))


def c_div(a: int, b: int) -> int:
    """C division: the exact quotient truncated toward zero."""
    return math.trunc(Fraction(a, b))


def wrap(v: int, bits: int) -> int:
    """Two's-complement wrap of v to a signed `bits`-bit word."""
    m = 1 << bits
    v %= m
    return v - m if v >= m // 2 else v


def srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    return round_away(Fraction(a * b, 2**31))


def rdbpot(x: int, e: int) -> int:
    return round_away(Fraction(x, 2**e))


def mbqm(x: int, q: int, shift: int, single_rounding: bool) -> int:
    """MultiplyByQuantizedMultiplier: x * q * 2^(shift-31), rounded once or twice."""
    if single_rounding:
        return round_up(Fraction(x * q * 2**max(shift, 0), 2 ** (31 + max(-shift, 0))))
    hi = srdhm(wrap(x * 2 ** max(shift, 0), 32), q)
    return rdbpot(hi, max(-shift, 0))


def clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v
