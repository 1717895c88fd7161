"""Slow, obviously-correct references for `qsim.fixed.cast` (the test oracles).

Everything here works on Python ints and `fractions.Fraction`, one element at a time,
straight from the definitions, sharing no code with the fast paths:

* a real value ``x`` in format ``(frac, word)`` is the exact rational
  ``Fraction(x) * 2**frac``, rounded by `round_ref` (comparisons of rationals);
* ``wrap`` is ``(v - lo) mod 2**word + lo``; ``saturate`` is ``min(max(v, lo), hi)``;
* a counter is ``(count of v outside [lo, hi], count of v, max |v|)``.

Inputs and outputs are lists (nested lists are not needed: every fast operation is
element-wise). ``None`` in an output list marks an input the fast path must reject.
"""
from __future__ import annotations

import math
from fractions import Fraction

from qsim.fixed.format import QFormat
from qsim.fixed.modes import Overflow, Rounding

HALF = Fraction(1, 2)


def round_ref(v: Fraction, rounding: "Rounding | str") -> int:
    """Round the exact rational `v` to an integer, straight from each mode's definition."""
    rounding = Rounding.parse(rounding)
    lower = math.floor(v)  # the integers either side of v: lower <= v < lower + 1
    upper = lower + 1
    if v == lower:
        return lower
    if rounding is Rounding.FLOOR:
        return lower
    if rounding is Rounding.TOWARD_ZERO:
        return lower if v > 0 else upper
    dist_lower, dist_upper = v - lower, upper - v
    if dist_lower < dist_upper:
        return lower
    if dist_upper < dist_lower:
        return upper
    # a tie
    if rounding is Rounding.HALF_UP:
        return upper
    if rounding is Rounding.HALF_AWAY:
        return upper if v > 0 else lower
    return lower if lower % 2 == 0 else upper  # HALF_EVEN


def word_range_ref(bits: int, signed: bool) -> tuple[int, int]:
    """Inclusive code range of a word."""
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def narrow_one_ref(v: int, bits: int, signed: bool, overflow: "Overflow | str") -> int:
    """Fit one exact integer into a `bits` word: clamp, or reduce modulo ``2**bits``."""
    lo, hi = word_range_ref(bits, signed)
    if Overflow.parse(overflow) is Overflow.SATURATE:
        return min(max(v, lo), hi)
    return (v - lo) % 2**bits + lo


def counts_ref(values: list, lo: int, hi: int) -> tuple[int, int, int | float]:
    """(events, elements, max_abs) a counter must report for exact `values`."""
    if not values:
        return 0, 0, 0
    return sum(1 for v in values if v < lo or v > hi), len(values), max(abs(v) for v in values)


def narrow_ref(raw: list[int], bits: int, signed: bool, overflow) -> tuple[list[int], tuple]:
    """Codes and counts of `qsim.fixed.cast.narrow`."""
    lo, hi = word_range_ref(bits, signed)
    return [narrow_one_ref(int(v), bits, signed, overflow) for v in raw], counts_ref([int(v) for v in raw], lo, hi)


def quantize_ref(x: list[float], fmt: QFormat, rounding, overflow) -> tuple[list[int | None], tuple]:
    """Codes and counts of `qsim.fixed.cast.quantize`; None where it must raise (NaN, or inf under wrap)."""
    out: list[int | None] = []
    exact: list[int | float] = []
    for xv in x:
        xv = float(xv)
        if math.isnan(xv):
            out.append(None)
            continue
        if math.isinf(xv):
            if Overflow.parse(overflow) is Overflow.WRAP:
                out.append(None)
                continue
            exact.append(xv)
            out.append(fmt.max_code if xv > 0 else fmt.min_code)
            continue
        v = round_ref(Fraction(xv) * 2**fmt.frac_bits, rounding)
        exact.append(v)
        out.append(narrow_one_ref(v, fmt.word_bits, fmt.signed, overflow))
    return out, counts_ref(exact, fmt.min_code, fmt.max_code)


def rescale_ref(raw: list[int], src_frac: int, dst_fmt: QFormat, rounding, overflow) -> tuple[list[int], tuple]:
    """Codes and counts of `qsim.fixed.cast.rescale`: the rational ``raw / 2**src_frac`` to `dst_fmt`."""
    exact = [round_ref(Fraction(int(v), 2**src_frac) * 2**dst_fmt.frac_bits if src_frac >= 0
                       else Fraction(int(v) * 2**-src_frac) * 2**dst_fmt.frac_bits, rounding) for v in raw]
    out = [narrow_one_ref(v, dst_fmt.word_bits, dst_fmt.signed, overflow) for v in exact]
    return out, counts_ref(exact, dst_fmt.min_code, dst_fmt.max_code)


def requantize_ref(q: list[int], src_fmt: QFormat, dst_fmt: QFormat, rounding, overflow):
    """Codes and counts of `qsim.fixed.cast.requantize`."""
    return rescale_ref(q, src_fmt.frac_bits, dst_fmt, rounding, overflow)


def dequantize_ref(q: list[int], fmt: QFormat) -> list[Fraction]:
    """Exact values of codes."""
    return [Fraction(int(v), 2**fmt.frac_bits) for v in q]


def mul_ref(a: list[int], a_fmt: QFormat, b: list[int], b_fmt: QFormat) -> tuple[list[int], QFormat]:
    """Exact products, and the smallest format that holds every product of the two formats."""
    products = [Fraction(int(x), 2**a_fmt.frac_bits) * Fraction(int(y), 2**b_fmt.frac_bits) for x, y in zip(a, b)]
    frac = a_fmt.frac_bits + b_fmt.frac_bits
    corners = [x * y for x in (a_fmt.min_code, a_fmt.max_code) for y in (b_fmt.min_code, b_fmt.max_code)]
    return [int(p * 2**frac) for p in products], _smallest_format(min(corners), max(corners), frac)


def add_ref(a: list[int], a_fmt: QFormat, b: list[int], b_fmt: QFormat) -> tuple[list[int], QFormat]:
    """Exact sums, and a format that holds every sum of the two formats (one extra integer bit)."""
    frac = max(a_fmt.frac_bits, b_fmt.frac_bits)
    sums = [Fraction(int(x), 2**a_fmt.frac_bits) + Fraction(int(y), 2**b_fmt.frac_bits) for x, y in zip(a, b)]
    return [int(s * 2**frac) for s in sums], QFormat(max(a_fmt.int_bits, b_fmt.int_bits) + 1, frac,
                                                      a_fmt.signed or b_fmt.signed)


def _smallest_format(lo: int, hi: int, frac: int) -> QFormat:
    signed = lo < 0
    word = 1
    while True:
        wlo, whi = word_range_ref(word, signed)
        if wlo <= lo and hi <= whi:
            return QFormat.from_word(word, frac, signed)
        word += 1


def accumulate_ref(terms: list[int], acc_bits: int, overflow) -> int:
    """A running two's-complement (wrap) or end-saturated sum of `terms` in an `acc_bits` register."""
    if Overflow.parse(overflow) is Overflow.WRAP:
        acc = 0
        for t in terms:  # wrap after every addition: the hardware's running sum
            acc = narrow_one_ref(acc + int(t), acc_bits, True, "wrap")
        return acc
    return narrow_one_ref(sum(int(t) for t in terms), acc_bits, True, "saturate")


def saturating_sum_ref(terms: list[int], acc_bits: int) -> tuple[int, tuple]:
    """Result and counts of a per-step saturating running sum (index order)."""
    lo, hi = word_range_ref(acc_bits, True)
    acc, partials = 0, []
    for t in terms:
        s = acc + int(t)
        partials.append(s)
        acc = min(max(s, lo), hi)
    return acc, counts_ref(partials, lo, hi)


def div_round_ref(num: int, den: int, rounding) -> int:
    """``num / den`` (``den > 0``) rounded to an integer: the exact rational, then `round_ref`."""
    assert den > 0, "the divisor of a pool is a positive element count"
    return round_ref(Fraction(int(num), int(den)), rounding)
