"""Slow, obviously-correct integer helpers for the reference kernels.

Everything here works on Python ints and `fractions.Fraction`, one value at a time, and
is written from the definitions (not from `qsim.fixed`), so that the fast kernels are
checked against an independent implementation:

* `round_fraction(v, rounding)` - the five rounding modes on an exact rational.
* `narrow_int(v, bits, signed, overflow)` - saturate / wrap (modulo ``2**bits``).
* `Tally` - overflow statistics (events, elements, peak |value|) kept by hand.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from qsim.fixed.format import QFormat
from qsim.fixed.modes import Overflow, Rounding


def round_fraction(v: Fraction, rounding: Rounding) -> int:
    """Round the exact rational `v` to an integer per `rounding` (the definition)."""
    rounding = Rounding.parse(rounding)
    lo = math.floor(v)
    hi = lo + 1
    frac = v - lo
    if frac == 0:
        return lo
    if rounding is Rounding.FLOOR:
        return lo
    if rounding is Rounding.TOWARD_ZERO:
        return lo if v > 0 else hi
    if frac != Fraction(1, 2):
        return lo if frac < Fraction(1, 2) else hi
    # an exact tie
    if rounding is Rounding.HALF_UP:
        return hi
    if rounding is Rounding.HALF_AWAY:
        return hi if v > 0 else lo
    return lo if lo % 2 == 0 else hi  # HALF_EVEN


def word_range(bits: int, signed: bool) -> tuple[int, int]:
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def narrow_int(v: int, bits: int, signed: bool, overflow: Overflow) -> int:
    """Fit `v` into a `bits`-bit word: clamp, or keep it modulo ``2**bits``."""
    lo, hi = word_range(bits, signed)
    if lo <= v <= hi:
        return v
    if Overflow.parse(overflow) is Overflow.SATURATE:
        return hi if v > hi else lo
    return (v - lo) % (2**bits) + lo


@dataclass
class Tally:
    """Hand-kept overflow statistics of one site (compare with `OverflowCounter`)."""

    events: int = 0
    elements: int = 0
    peak: int = 0

    def see(self, v: int, lo: int, hi: int) -> None:
        self.elements += 1
        self.peak = max(self.peak, abs(v))
        if v < lo or v > hi:
            self.events += 1


def rescale_int(v: int, src_frac: int, fmt: QFormat, rounding: Rounding, overflow: Overflow,
                tally: Tally | None = None) -> int:
    """``v / 2**src_frac`` rounded to `fmt`'s grid, then narrowed; `tally` sees the rounded value."""
    r = round_fraction(Fraction(v, 2**src_frac) * 2**fmt.frac_bits, rounding)
    if tally is not None:
        tally.see(r, fmt.min_code, fmt.max_code)
    return narrow_int(r, fmt.word_bits, fmt.signed, overflow)
