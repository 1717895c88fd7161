"""Slow, obviously-correct integer helpers for the reference kernels.

Everything here works on Python ints and `fractions.Fraction`, one value at a time, on top
of the one oracle `qsim.fixed.ref` (rounding and narrowing written from the definitions,
not from the fast paths), so that the fast kernels are checked against an independent
implementation:

* `Tally` - overflow statistics (events, elements, peak |value|) kept by hand.
* `rescale_int` - one requantization of an exact accumulator value.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from qsim.fixed.format import QFormat
from qsim.fixed.modes import Overflow, Rounding
from qsim.fixed.ref import narrow_one_ref, round_ref


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
    r = round_ref(Fraction(v, 2**src_frac) * 2**fmt.frac_bits, rounding)
    if tally is not None:
        tally.see(r, fmt.min_code, fmt.max_code)
    return narrow_one_ref(r, fmt.word_bits, fmt.signed, overflow)
