"""Reference tanh, swish, hard_sigmoid, hard_swish, leaky ReLU and softmax, one code at a time.

Plain Python: `fractions.Fraction` for the rational functions, 60-digit `decimal` for the
transcendental ones (with the exponent range opened so that no ``exp`` overflows), written
from the definitions with one rounding (`qsim.fixed.ref.round_ref`) and one narrowing
(`narrow_one_ref`) per element. Transcendental values are formed so that 60 digits are
relative to the part that decides the rounding: ``tanh = sign * (1 - 2 / (1 + e**(2|v|)))``
and ``swish = v - v / (1 + e**v)`` (v > 0) keep the tiny distance to +-1 (to v) exact up to
60 digits of that distance.
"""
from __future__ import annotations

import decimal
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np

from qsim.fixed.format import QFormat
from qsim.fixed.ref import narrow_one_ref, round_ref
from qsim.kernels.ref.common import Tally

DIGITS = 60


def _exp(x: Fraction) -> Fraction:
    with localcontext() as ctx:
        ctx.prec, ctx.Emax, ctx.Emin = DIGITS, decimal.MAX_EMAX, decimal.MIN_EMIN
        return Fraction((Decimal(x.numerator) / Decimal(x.denominator)).exp())


def tanh_value(v: Fraction) -> Fraction:
    if v == 0:
        return Fraction(0)
    return (1 if v > 0 else -1) * (1 - 2 / (1 + _exp(2 * abs(v))))


def swish_value(v: Fraction) -> Fraction:
    if v == 0:
        return Fraction(0)
    return v - v / (1 + _exp(v)) if v > 0 else v / (1 + _exp(-v))


def hard_sigmoid_value(v: Fraction, slope: Fraction, offset: Fraction) -> Fraction:
    return min(max(slope * v + offset, Fraction(0)), Fraction(1))


def hard_swish_value(v: Fraction) -> Fraction:
    return v * min(max(v + 3, Fraction(0)), Fraction(6)) / 6


def unary_ref(x, fn, *, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow, cap: int | None = None):
    """Codes and `Tally` of ``narrow(round(fn(v) * 2**out_frac))`` (clipped at `cap` first)."""
    x = np.asarray(x)
    tally = Tally()
    out = np.zeros(x.shape, dtype=np.int64)
    for idx in np.ndindex(*x.shape):
        r = round_ref(fn(Fraction(int(x[idx]), 2**in_fmt.frac_bits)) * 2**out_fmt.frac_bits, rounding)
        if cap is not None:
            r = min(r, cap)
        tally.see(r, out_fmt.min_code, out_fmt.max_code)
        out[idx] = narrow_one_ref(r, out_fmt.word_bits, out_fmt.signed, overflow)
    return out, tally


def leaky_relu_value(v: Fraction, slope: Fraction, threshold: Fraction, max_value: Fraction | None) -> Fraction:
    """Keras ReLU: max_value if v >= max_value; v if v >= threshold; slope * (v - threshold)."""
    if max_value is not None and v >= max_value:
        return max_value
    return v if v >= threshold else slope * (v - threshold)


def softmax_ref(x, *, axis: int = -1, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow,
                exp_frac: int = 30):
    """Codes and `Tally`: per row, ``e = round(exp((q - max) / 2**in_frac) * 2**exp_frac)``,
    ``y = round(e * 2**out_frac / sum(e))``, narrowed."""
    x = np.moveaxis(np.asarray(x), axis, -1)
    out = np.zeros(x.shape, dtype=np.int64)
    tally = Tally()
    for idx in np.ndindex(*x.shape[:-1]):
        row = [int(c) for c in x[idx]]
        top = max(row)
        e = [round_ref(_exp(Fraction(c - top, 2**in_fmt.frac_bits)) * 2**exp_frac, rounding) for c in row]
        total = sum(e)
        for j, ej in enumerate(e):
            r = round_ref(Fraction(ej * 2**out_fmt.frac_bits, total), rounding)
            tally.see(r, out_fmt.min_code, out_fmt.max_code)
            out[idx + (j,)] = narrow_one_ref(r, out_fmt.word_bits, out_fmt.signed, overflow)
    return np.moveaxis(out, -1, axis), tally
