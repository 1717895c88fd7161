"""Fixed-point tanh, hard_sigmoid, hard_swish, swish and leaky/thresholded ReLU.

Contract (every kernel): int64 codes ``q`` of ``in_fmt`` (value ``v = q / 2**in_frac``) in;
``y = narrow(round(f(v) * 2**out_frac))`` out, in ``out_fmt``: the exact value of ``f`` at
the exact input, rounded once with the plan's rounding at the node's ``act`` site, then
narrowed per its overflow mode; the ``act`` counter sees every rounded value before
narrowing (an event per element outside ``out_fmt``). Inputs of at most 16 bits go through
a table over all input codes built once per value of (function, parameters, formats,
rounding); wider inputs are evaluated on the tensor's distinct codes by the same
evaluator, so both give the same codes (`qsim.kernels.lut`).

* ``tanh(v)``, ``swish(v) = v * sigmoid(v)``: transcendental; correctly rounded by
  `qsim.kernels.lut.round_transcendental` (float64 where certified, 100-digit `decimal`
  otherwise; no ties exist for ``v != 0``).
* ``hard_sigmoid(v) = clip(slope * v + offset, 0, 1)``: ``slope``/``offset`` are the node's
  attributes read as the rationals they stand for (`qsim.kernels.lut.simple_fraction`:
  Keras 3 ``1/6``, ``1/2``; Keras 2 ``1/5``, ``1/2`` exactly); exact integer arithmetic,
  ties rounded per mode.
* ``hard_swish(v) = v * clip(v + 3, 0, 6) / 6`` (Keras hard_silu): exact integer
  arithmetic, ties per mode.
* ``leaky_relu`` (Keras ``ReLU(max_value, negative_slope, threshold)``, ``LeakyReLU``):
  ``M`` if ``v >= M`` (``max_value``), ``v`` if ``threshold <= v``, else
  ``slope_q * (v - threshold)``, where ``slope_q`` is the negative slope quantized to the
  node's ``weights`` format (site ``weights``: its rounding, overflow and counter;
  `quantize_slope`), and ``threshold``/``max_value`` are the exact values of the float
  attributes. The exact value is rounded once at ``act``; with ``max_value`` the rounded
  value is then clipped at ``floor(M * 2**out_frac)`` (never above ``M``, as the plain
  ReLU6 kernel) before narrowing.
"""
from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np

from qsim.errors import PlanError
from qsim.fixed.cast import quantize
from qsim.fixed.counters import OverflowCounter
from qsim.fixed.divide import div_round
from qsim.fixed.format import QFormat
from qsim.fixed.modes import Rounding
from qsim.kernels.lut import (
    EXACT_DIGITS,
    Transcendental,
    int_array,
    lookup,
    round_transcendental,
    scaled,
    simple_fraction,
)


def _max_abs(fmt: QFormat) -> int:
    return max(-fmt.min_code, fmt.max_code)


def _decimal_exp(x: Fraction) -> Fraction:
    """exp(x) to `EXACT_DIGITS` significant digits (x a moderate dyadic rational)."""
    with localcontext() as ctx:
        ctx.prec = EXACT_DIGITS
        return Fraction((Decimal(x.numerator) / Decimal(x.denominator)).exp())


# --- tanh ----------------------------------------------------------------------------------
def _tanh_exact(code: int, in_frac: int, out_frac: int) -> Fraction:
    """``tanh(v) * 2**out_frac = sign * 2**out_frac * (1 - 2 / (1 + e**(2|v|)))``.

    For ``|v| >= C = out_frac/2 + 20`` the value is within ``2**(out_frac+1) e**(-2C) < 1/4``
    of ``+-2**out_frac`` (an integer; the next rounding points are 1/2 away), so ``tanh(C)``
    rounds as ``tanh(v)`` in every mode: ``|v|`` is clamped at ``C`` (no huge exponentials).
    """
    a = min(abs(Fraction(code, 1 << in_frac)), Fraction(out_frac // 2 + 20))
    small = 2 / (1 + _decimal_exp(2 * a))
    return (1 if code > 0 else -1) * (1 - small) * (1 << out_frac)


def _tanh_bounds(v):
    return np.where(v > 0, 0.0, np.maximum(-1.0, v)), np.where(v > 0, np.minimum(1.0, v), 0.0)


def _tanh_exact_bounds(v: Fraction):
    return (Fraction(0), min(Fraction(1), v)) if v > 0 else (max(Fraction(-1), v), Fraction(0))


TANH = Transcendental("tanh", np.tanh, _tanh_bounds, _tanh_exact_bounds, _tanh_exact, Fraction(0))


# --- swish ---------------------------------------------------------------------------------
def _swish_exact(code: int, in_frac: int, out_frac: int) -> Fraction:
    """``v * sigmoid(v) * 2**out_frac``: ``v 2**o - v 2**o / (1 + e**v)`` for ``v > 0``,
    ``v 2**o / (1 + e**-v)`` for ``v < 0`` (each small term to 100 digits, relative).

    Far out the value is within a quarter grid step of a grid point that holds every
    rounding point (``g = 2**min(-1, o - i)`` for ``v > 0``: the true value lies in
    ``(v 2**o - g/4, v 2**o)``; 1/2 for ``v < 0``: it lies in ``(-1/4, 0)``) once
    ``|v| >= C = L + 20`` with ``L = max(o + 3, i + 2)`` (``C e**-C < 2**-L``); there any value
    of that interval rounds the same: ``v 2**o - g/8`` and ``-1/8``.
    """
    v = Fraction(code, 1 << in_frac)
    scale = 1 << out_frac
    far = max(out_frac + 3, in_frac + 2) + 20
    if v > 0:
        if v >= far:
            return v * scale - Fraction(1, 8) * Fraction(2) ** min(-1, out_frac - in_frac)
        return v * scale - v * scale / (1 + _decimal_exp(v))
    if -v >= far:
        return Fraction(-1, 8)
    return v * scale / (1 + _decimal_exp(-v))


def _swish_approx(v):
    return v / (1.0 + np.exp(-v))


def _swish_bounds(v):  # v * sigmoid(v) lies strictly between 0 and v
    return np.minimum(v, 0.0), np.maximum(v, 0.0)


def _swish_exact_bounds(v: Fraction):
    return min(v, Fraction(0)), max(v, Fraction(0))


SWISH = Transcendental("swish", _swish_approx, _swish_bounds, _swish_exact_bounds, _swish_exact, Fraction(0))


# --- public kernels ------------------------------------------------------------------------
def _transcendental(spec: Transcendental, x, in_fmt, out_fmt, rounding, overflow, counter):
    rounding = Rounding.parse(rounding)
    key = (spec.name, in_fmt, out_fmt, rounding)
    return lookup(x, in_fmt=in_fmt, out_fmt=out_fmt, overflow=overflow, counter=counter, key=key,
                  raw_fn=lambda q: round_transcendental(q, in_fmt.frac_bits, out_fmt.frac_bits, rounding, spec))


def tanh(x, *, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow,
         counter: OverflowCounter | None = None) -> np.ndarray:
    """Correctly rounded tanh of codes (see module doc)."""
    return _transcendental(TANH, x, in_fmt, out_fmt, rounding, overflow, counter)


def swish(x, *, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow,
          counter: OverflowCounter | None = None) -> np.ndarray:
    """Correctly rounded ``v * sigmoid(v)`` of codes (see module doc)."""
    return _transcendental(SWISH, x, in_fmt, out_fmt, rounding, overflow, counter)


def hard_sigmoid(x, *, slope: float, offset: float, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow,
                 counter: OverflowCounter | None = None) -> np.ndarray:
    """``clip(slope * v + offset, 0, 1)`` exactly, rounded once (see module doc).

    >>> hard_sigmoid(np.array([-768, 0, 256, 768]), slope=1 / 6, offset=0.5, in_fmt=QFormat(7, 8),
    ...              out_fmt=QFormat(0, 8, signed=False), rounding="half_even", overflow="saturate").tolist()
    [0, 128, 171, 255]
    """
    rounding = Rounding.parse(rounding)
    a, c = simple_fraction(slope), simple_fraction(offset)
    fi, fo = in_fmt.frac_bits, out_fmt.frac_bits
    den = a.denominator * c.denominator << fi  # slope*v + offset = t / den
    bound = (abs(a.numerator) * c.denominator * _max_abs(in_fmt) + abs(c.numerator) * a.denominator * (1 << fi)
             + den) << (fo + 2)  # |numerator| and 2 * denominator

    def raw_fn(q):
        q = int_array(q, bound)
        t = a.numerator * c.denominator * q + c.numerator * a.denominator * (1 << fi)
        t = np.minimum(np.maximum(t, 0), den)
        return div_round(*scaled(t, den, fo), rounding)

    key = ("hard_sigmoid", a, c, in_fmt, out_fmt, rounding)
    return lookup(x, in_fmt=in_fmt, out_fmt=out_fmt, overflow=overflow, counter=counter, key=key, raw_fn=raw_fn)


def hard_swish(x, *, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow,
               counter: OverflowCounter | None = None) -> np.ndarray:
    """``v * clip(v + 3, 0, 6) / 6`` exactly, rounded once (see module doc).

    >>> hard_swish(np.array([-4, -2, 0, 1, 4]), in_fmt=QFormat(3, 1), out_fmt=QFormat(3, 2),
    ...            rounding="half_even", overflow="saturate").tolist()   # v = -2, -1, 0, 0.5, 2
    [-1, -1, 0, 1, 7]
    """
    rounding = Rounding.parse(rounding)
    fi, fo = in_fmt.frac_bits, out_fmt.frac_bits
    three, six = 3 << fi, 6 << fi
    bound = max(_max_abs(in_fmt) * six << fo, 12 << (2 * fi))  # |numerator|, 2 * denominator

    def raw_fn(q):
        q = int_array(q, bound)
        num = q * np.minimum(np.maximum(q + three, 0), six)  # v * clip(v + 3, 0, 6) * 2**(2 fi)
        return div_round(*scaled(num, 6 << (2 * fi), fo), rounding)

    key = ("hard_swish", in_fmt, out_fmt, rounding)
    return lookup(x, in_fmt=in_fmt, out_fmt=out_fmt, overflow=overflow, counter=counter, key=key, raw_fn=raw_fn)


def quantize_slope(negative_slope: float, fmt: QFormat, *, rounding, overflow,
                   counter: OverflowCounter | None = None) -> int:
    """The negative slope as one code of the ``weights`` format (site ``weights``)."""
    return int(quantize(np.array([float(negative_slope)]), fmt, rounding=rounding, overflow=overflow,
                        counter=counter)[0])


def leaky_relu(x, *, slope_code: int, slope_fmt: QFormat, threshold: float = 0.0, max_value=None,
               in_fmt: QFormat, out_fmt: QFormat, rounding, overflow,
               counter: OverflowCounter | None = None) -> np.ndarray:
    """Keras ReLU with a negative slope and/or a threshold, exactly, rounded once (module doc).

    >>> leaky_relu(np.array([-3, -1, 0, 5]), slope_code=51, slope_fmt=QFormat(0, 8), in_fmt=QFormat(3, 4),
    ...            out_fmt=QFormat(3, 4), rounding="half_even", overflow="saturate").tolist()  # 0.2 ~ 51/256
    [-1, 0, 0, 5]
    """
    rounding = Rounding.parse(rounding)
    if max_value is not None and not max_value > 0:
        raise PlanError(f"relu max_value must be > 0 for a fixed-point clip, got {max_value!r}")
    fi, fo, fw = in_fmt.frac_bits, out_fmt.frac_bits, slope_fmt.frac_bits
    theta = Fraction(threshold)
    top = None if max_value is None else Fraction(max_value)
    tn, td = theta.numerator, theta.denominator
    a = int(slope_code)
    m = _max_abs(in_fmt)
    bound = max(abs(a) * (m * td + abs(tn) << fi), m * td + (abs(tn) << fi),
                0 if top is None else m * top.denominator + (top.numerator << fi),
                td << (fw + fi + 2)) << (fo + 1)  # every numerator, product and 2 * denominator

    def raw_fn(q):
        q = int_array(q, bound)
        raw = np.where(q * td >= tn << fi,
                       div_round(*scaled(q, 1 << fi, fo), rounding),  # v
                       div_round(*scaled(a * (q * td - (tn << fi)), td << (fw + fi), fo), rounding))
        if top is not None:
            top_raw = div_round(np.array([top.numerator << fo]), top.denominator, rounding)[0]
            cap = math.floor(top * (1 << fo))
            raw = np.minimum(np.where(q * top.denominator >= top.numerator << fi, top_raw, raw), cap)
        return raw

    key = ("leaky_relu", a, slope_fmt, theta, top, in_fmt, out_fmt, rounding)
    return lookup(x, in_fmt=in_fmt, out_fmt=out_fmt, overflow=overflow, counter=counter, key=key, raw_fn=raw_fn)
