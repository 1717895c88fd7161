"""Fixed-point sigmoid: evaluate on the input codes, round once to the output format.

Method (what a lookup table in hardware holds): for each distinct input code ``q``
(value ``v = q / 2**in_frac``), ``y = round(sigmoid(v) * 2**out_frac)`` with the plan's
rounding at site ``act``, then narrowed per its overflow mode (sigmoid is in (0, 1), so
only formats without an integer bit can overflow: e.g. UQ0.8 rounds sigmoid(6) up to
1.0 = code 256 > 255, an event).

The rounding is exact (correctly rounded): sigmoid is computed in float64 (error < 1e-15
relative); any value within 1e-9 of a rounding decision point (an integer for floor /
toward_zero, a half-integer for the nearest modes) is recomputed with 80-digit `decimal`
arithmetic, which decides it. (``sigmoid(v)`` is a dyadic rational only at ``v = 0``, where
the decimal value 1/2 is exact.) Inputs wider than 53 bits go through `decimal` entirely.
"""
from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np

from qsim.fixed.cast import narrow
from qsim.fixed.counters import OverflowCounter
from qsim.fixed.format import QFormat
from qsim.fixed.modes import Rounding, round_up

DECIMAL_DIGITS = 80
_MARGIN = 1e-9


def sigmoid_exact(code: int, in_frac: int) -> Fraction:
    """sigmoid(code / 2**in_frac) as a Fraction, ~80 significant digits (also of 1 - sigmoid)."""
    with localcontext() as ctx:
        ctx.prec = DECIMAL_DIGITS
        v = Decimal(int(code)) / (Decimal(2) ** in_frac)
        # exp(-v) to 80 significant digits (any exponent), then 1 / (1 + e) exactly: the
        # result keeps ~80 digits of relative accuracy in both s and 1 - s
        return 1 / (1 + Fraction((-v).exp()))


def _round_fraction(v: Fraction, rounding: Rounding) -> int:
    """The one rule (`qsim.fixed.modes.round_up`) on an exact rational."""
    fl = math.floor(v)
    return fl + int(bool(round_up(v - fl, Fraction(1, 2), v < 0, fl % 2 == 1, rounding.code)))


def sigmoid(x, *, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow,
            counter: OverflowCounter | None = None) -> np.ndarray:
    """Sigmoid of codes of `in_fmt` as codes of `out_fmt` (see module doc)."""
    rounding = Rounding.parse(rounding)
    x = np.asarray(x, dtype=np.int64)
    uniq, inverse = np.unique(x, return_inverse=True)
    raw = np.empty(uniq.size, dtype=np.int64)
    slow = np.ones(uniq.size, dtype=bool)
    if in_fmt.word_bits <= 53:
        v = np.ldexp(uniq.astype(np.float64), -in_fmt.frac_bits)
        with np.errstate(over="ignore"):  # exp(-v) = inf gives s = 0, decided below
            s = np.ldexp(1.0 / (1.0 + np.exp(-v)), out_fmt.frac_bits)
        one = 2.0**out_fmt.frac_bits  # the value 1.0, never reached: 0 < sigmoid < 1
        if rounding in (Rounding.FLOOR, Rounding.TOWARD_ZERO):  # s > 0: both are floor
            r = np.floor(s)
            dist = np.minimum(s - r, r + 1 - s)
            r = np.where(s > one - 0.5, one - 1, r)
            # within half an LSB of 0 or of 1.0 the floor is certain (the bounds are strict)
            certain = (s < 0.5) | (s > one - 0.5)
        else:
            r = np.floor(s + 0.5)  # nearest; ties and near-ties are re-decided below
            dist = np.abs(np.abs(s - np.floor(s)) - 0.5)
            certain = np.zeros(s.shape, dtype=bool)
        slow = (dist < _MARGIN * np.maximum(1.0, s)) & ~certain
        raw[~slow] = r[~slow].astype(np.int64)
    for i in np.flatnonzero(slow):
        raw[i] = _round_fraction(sigmoid_exact(int(uniq[i]), in_fmt.frac_bits) * 2**out_fmt.frac_bits, rounding)
    codes = narrow(raw[inverse].reshape(x.shape), out_fmt.word_bits, out_fmt.signed,
                   overflow=overflow, counter=counter)
    return codes
