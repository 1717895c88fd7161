"""Fixed-point softmax along one axis: exact max, a correctly rounded exp table, one division.

Integer rule, for codes ``q`` of ``in_fmt`` along ``axis`` (every other index a separate row):

1. ``m = max(q)`` over the row and ``d = q - m <= 0``, exactly (int64; input words up to 62
   bits).
2. ``e = round(exp(d / 2**in_frac) * 2**30)``: exp of every difference correctly rounded
   (the node's ``act`` rounding) into the intermediate format ``UQ1.30`` (`EXP_FMT`), by
   `qsim.kernels.lut.round_transcendental`; a table over ``d`` in ``[-(2**w - 1), 0]`` for
   input words ``w <= 16``, the row's distinct differences otherwise. ``exp(0) = 1`` is the
   exact code ``2**30``, every other ``e`` is in ``[0, 2**30]``: no overflow, and the row
   sum is ``S >= 2**30`` (never zero).
3. ``S = sum(e)`` exactly (int64: rows of fewer than 2**31 elements).
4. ``y = narrow(round(e * 2**out_frac / S))``: one exact division, rounded with the
   ``act`` rounding, narrowed per the ``act`` overflow mode and counted at ``act`` (``1.0``
   overflows a format without an integer bit, e.g. ``UQ0.8``).

A row sums to 1 within ``n`` output steps (each ``y`` within one step of ``e / S``; half a
step in the nearest modes), and the ``e / S`` differ from the true softmax by at most
about ``n * 2**-30`` relative.
"""
from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np

from qsim.errors import PlanError
from qsim.fixed.cast import narrow
from qsim.fixed.counters import OverflowCounter
from qsim.fixed.divide import div_round
from qsim.fixed.format import QFormat
from qsim.fixed.modes import Rounding
from qsim.kernels.lut import (
    EXACT_DIGITS,
    Transcendental,
    int_array,
    raw_values,
    round_transcendental,
    scaled,
)

EXP_FMT = QFormat(1, 30, signed=False)
MAX_INPUT_WORD_BITS = 62


def _exp_exact(code: int, in_frac: int, out_frac: int) -> Fraction:
    """``exp(d) * 2**out_frac``; for ``d <= -C = -(out_frac + 10)`` the value is in
    ``(0, 1/4)`` (``e**-C < 2**-(out_frac + 2)``), where every value rounds alike: 1/8."""
    d = Fraction(code, 1 << in_frac)
    if d <= -(out_frac + 10):
        return Fraction(1, 8)
    with localcontext() as ctx:
        ctx.prec = EXACT_DIGITS
        return Fraction((Decimal(d.numerator) / Decimal(d.denominator)).exp()) * (1 << out_frac)


def _exp_bounds(d):  # 0 < exp(d) < 1 for d < 0 (d > 0 is never asked)
    return np.where(d < 0, 0.0, 1.0), np.where(d < 0, 1.0, np.inf)


def _exp_exact_bounds(d: Fraction):
    return (Fraction(0), Fraction(1)) if d < 0 else (Fraction(1), None)


EXP = Transcendental("softmax exp", np.exp, _exp_bounds, _exp_exact_bounds, _exp_exact, Fraction(1))


def softmax(x, *, axis: int = -1, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow,
            counter: OverflowCounter | None = None) -> np.ndarray:
    """Softmax of codes along `axis` (integer rule in the module doc).

    >>> softmax(np.array([[0, 0], [256, 0]]), in_fmt=QFormat(7, 8), out_fmt=QFormat(0, 8, signed=False),
    ...         rounding="half_even", overflow="saturate").tolist()   # 1/2, 1/2; e/(1+e), 1/(1+e)
    [[128, 128], [187, 69]]
    """
    rounding = Rounding.parse(rounding)
    if in_fmt.word_bits > MAX_INPUT_WORD_BITS:
        raise PlanError(f"softmax input {in_fmt}: words of at most {MAX_INPUT_WORD_BITS} bits "
                        "(the differences to the row maximum must fit int64)")
    x = np.asarray(x, dtype=np.int64)
    n = x.shape[axis]
    if n >= 1 << 31:
        raise PlanError(f"softmax over {n} elements: at most 2**31 - 1 (the exact sum is int64)")
    d = x - x.max(axis=axis, keepdims=True)
    span = (1 << in_fmt.word_bits) - 1  # d >= min_code - max_code
    key = ("softmax exp", in_fmt.frac_bits, span, rounding)
    e = raw_values(d, -span, 0, key, lambda c: round_transcendental(c, in_fmt.frac_bits, EXP_FMT.frac_bits,
                                                                   rounding, EXP))
    total = e.sum(axis=axis, keepdims=True)
    fo = out_fmt.frac_bits
    num = int_array(e, max(1 << (EXP_FMT.frac_bits + 1 + fo), 2 * (n << (EXP_FMT.frac_bits + 1))))
    den = total.astype(object) if num.dtype == object else total
    raw = div_round(*scaled(num, den, fo), rounding)
    return narrow(raw, out_fmt.word_bits, out_fmt.signed, overflow=overflow, counter=counter)
