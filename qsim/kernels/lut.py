"""Correctly rounded functions of one input code: lookup tables and the two exact evaluators.

A unary activation ``y = f(x)`` on codes is ``narrow(round(f(q / 2**in_frac) * 2**out_frac))``:
one rounding (the plan's mode at the node's ``act`` site) of the exact value, then the
overflow mode, the counter seeing the rounded value before narrowing. Two ways to get the
rounded value ("raw") of a code, both exact:

* `qsim.fixed.divide.div_round` - for rational ``f`` (hard_sigmoid, hard_swish, leaky ReLU, the softmax
  division): the value is ``num / den`` with integer numerator and denominator, rounded by
  the one rule `qsim.fixed.modes.round_up` on the integer remainder (ties included).
  Integers are int64 when a bound from the formats proves ``|num| < 2**62``, Python ints
  (object arrays) otherwise.
* `round_transcendental` - for ``tanh``, ``swish`` and ``exp``: for a dyadic ``v != 0``,
  ``f(v)`` is transcendental (Lindemann-Weierstrass: ``e**a`` is transcendental for
  algebraic ``a != 0``, and tanh, v*sigmoid(v) and exp are rational in ``e**v`` with
  algebraic coefficients), so ``s = f(v) * 2**out_frac`` is never an integer nor a
  half-integer: no ties, and every mode only needs ``k = floor(s + off)`` with ``off = 0``
  (floor, toward_zero, then ``+1`` for negatives) or ``off = 1/2`` (the three nearest
  modes agree without ties). ``v = 0`` is exact (``f(0)`` given as a rational).
  ``k`` comes from float64 when certain: ``t = s + off`` is computed within
  ``2**-40 * (|s| + 1) + 2**(out_frac - 1000)`` (libm tanh/exp and the few operations
  around them are within a few ulp, 2**-50; the absolute term covers underflow), so if
  ``t`` is farther than that from every integer, ``floor(t)`` is ``k``. Near an integer,
  the function's strict bounds (``lo < f(v) < hi``, e.g. ``tanh < 1``) may decide the
  side; otherwise (or for inputs wider than 53 bits, not exact in float64) the code is
  evaluated with 100-digit `decimal` arithmetic (``spec.exact``: correctly rounded ``exp``,
  exact rational operations around it, so within ``1e-99 * (|s| + 2**out_frac)``, which is
  below ``1e-80 * (|s| + 1)`` as ``2**out_frac < 1e19``), whose result decides unless it
  lies within ``1e-70 * (|s| + 1)`` of an integer and the bounds do not decide: then
  `QsimError` (never seen; it would be a near-tie closer than 70 digits).

`lookup` applies either evaluator to codes: for inputs of at most `TABLE_MAX_WORD_BITS`
bits, one table over every input code, built once per (function and its parameters,
input format, output format, rounding) and cached by that value (`functools.lru_cache`,
never by object identity); for wider words, the evaluator runs on the distinct codes of
the tensor. The table holds raw (rounded, not yet narrowed) values, so the overflow mode
and the counters are applied per element after the lookup.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from qsim.errors import InputError, QsimError
from qsim.fixed.cast import narrow
from qsim.fixed.counters import OverflowCounter
from qsim.fixed.divide import div_round
from qsim.fixed.format import QFormat
from qsim.fixed.modes import Rounding

TABLE_MAX_WORD_BITS = 16
INT64_BOUND = 2**62
FLOAT_REL_ERR = 2.0**-40
EXACT_DIGITS = 100
EXACT_TOL = Fraction(1, 10**70)


# --- exact rationals ---------------------------------------------------------------------
def int_array(values, bound: int) -> np.ndarray:
    """`values` as int64 when ``bound < 2**62`` (proved by the caller), else Python ints."""
    if bound < INT64_BOUND:
        return np.asarray(values, dtype=np.int64)
    out = np.empty(np.shape(values), dtype=object)
    out[...] = np.asarray(values, dtype=object)
    return out


def scaled(num, den: int, shift: int):
    """``num * 2**shift / den`` as an integer (numerator, denominator) pair."""
    return (num * (1 << shift), den) if shift >= 0 else (num, den * (1 << -shift))


def simple_fraction(value: float, max_den: int = 4096) -> Fraction:
    """A float constant as the rational it stands for: the fraction of smallest denominator
    ``<= max_den`` within ``1e-12 * max(1, |value|)`` (``1/6``, ``0.2 = 1/5``), else the
    float's exact binary value.

    >>> simple_fraction(1 / 6), simple_fraction(0.2), simple_fraction(0.1 + 2**-30) == Fraction(0.1 + 2**-30)
    (Fraction(1, 6), Fraction(1, 5), True)
    """
    exact = Fraction(value)
    near = exact.limit_denominator(max_den)
    return near if abs(near - exact) <= Fraction(1, 10**12) * max(1, abs(exact)) else exact


# --- transcendental functions --------------------------------------------------------------
@dataclass(frozen=True)
class Transcendental:
    """What `round_transcendental` needs of ``f`` (see module doc).

    ``approx(v)``: float64 ``f(v)`` (any finite or infinite result; errors as stated).
    ``bounds(v)``: float64 arrays ``(lo, hi)`` with ``lo < f(v) < hi`` for ``v != 0``
    (``-inf``/``inf`` when unknown; used only where they are exact binary numbers).
    ``exact_bounds(v)``: the same bounds as Fractions (None: unknown) for a Fraction ``v != 0``.
    ``exact(code, in_frac, out_frac)``: a Fraction within ``1e-99 * (|s| + 2**out_frac)``
    of ``s = f(v) * 2**out_frac``, or (far out) a value at least 1e-60 from every rounding
    point that rounds as ``s`` in every mode.
    ``at_zero``: ``f(0)`` exactly.
    """

    name: str
    approx: Callable[[np.ndarray], np.ndarray]
    bounds: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    exact_bounds: Callable[[Fraction], tuple[Fraction | None, Fraction | None]]
    exact: Callable[[int, int, int], Fraction]
    at_zero: Fraction


def _floor_certified(t: np.ndarray, err: np.ndarray, ls: np.ndarray, hs: np.ndarray, off: float):
    """(k, known): ``k = floor(true t)`` where `known`, from the float `t` within `err` and
    the strict bounds ``ls < true t - off < hs`` (``ls``, ``hs`` exact: 0, +-2**out_frac, v * 2**out_frac)."""
    with np.errstate(invalid="ignore"):
        k = np.floor(t)
        below, above = t - k, k + 1 - t  # distances to the integers k and k + 1
        finite = np.isfinite(t)
        known = finite & (below > err) & (above > err)
        near_k = finite & (below <= err) & (above > err)
        near_k1 = finite & (above <= err) & (below > err)
        # near an integer j: the true t is below j if hs <= j - off, above it if ls >= j - off
        down = near_k & (hs <= k - off)  # floor = k - 1
        stay = (near_k & (ls >= k - off)) | (near_k1 & (hs <= k + 1 - off))
        up = near_k1 & (ls >= k + 1 - off)  # floor = k + 1
        known |= down | stay | up
        k = k - down + up
    return k, known


def _floor_exact(t: Fraction, ls: Fraction | None, hs: Fraction | None, off: Fraction) -> int | None:
    """floor of a value known within `EXACT_TOL`-relative of `t`, or None (a near-tie the
    exact bounds ``ls < t - off < hs`` do not decide)."""
    k = math.floor(t)
    tol = EXACT_TOL * (abs(t) + 1)
    if t - k > tol and k + 1 - t > tol:
        return k
    j = k if t - k <= tol else k + 1  # the integer it is near
    if hs is not None and hs <= j - off:
        return j - 1
    if ls is not None and ls >= j - off:
        return j
    return None


def round_transcendental(codes: np.ndarray, in_frac: int, out_frac: int, rounding: Rounding,
                         spec: Transcendental) -> np.ndarray:
    """Correctly rounded ``spec`` on distinct int64 `codes` (see module doc): raw int64 values."""
    rounding = Rounding.parse(rounding)
    codes = np.asarray(codes, dtype=np.int64)
    off = 0.0 if rounding in (Rounding.FLOOR, Rounding.TOWARD_ZERO) else 0.5
    k = np.zeros(codes.shape, dtype=np.float64)
    known = np.zeros(codes.shape, dtype=bool)
    in_word = int(max(abs(int(codes.min())), abs(int(codes.max())))).bit_length() if codes.size else 0
    v = np.ldexp(codes.astype(np.float64), -in_frac)
    with np.errstate(all="ignore"):
        lo, hi = spec.bounds(v)
        ls, hs = np.ldexp(lo, out_frac), np.ldexp(hi, out_frac)  # exact (or +-inf)
        if in_word <= 53:  # v exact in float64
            s = np.ldexp(spec.approx(v), out_frac)
            t = s + off
            err = FLOAT_REL_ERR * (np.abs(s) + 1) + math.ldexp(1.0, out_frac - 1000)
            k, known = _floor_certified(t, err, ls, hs, off)
            known &= np.abs(k) < 2.0**52  # k exact as an int64 below
    nonzero = codes != 0
    known &= nonzero
    raw = np.zeros(codes.shape, dtype=np.int64)
    raw[known] = k[known].astype(np.int64)
    for i in np.flatnonzero(~known & nonzero):
        c = int(codes[i])
        lo_x, hi_x = spec.exact_bounds(Fraction(c, 1 << in_frac))
        got = _floor_exact(spec.exact(c, in_frac, out_frac) + Fraction(off),
                           None if lo_x is None else lo_x * (1 << out_frac),
                           None if hi_x is None else hi_x * (1 << out_frac), Fraction(off))
        if got is None:
            raise QsimError(f"{spec.name}: code {c} (frac {in_frac}) is within 1e-70 of a rounding "
                            f"point at {out_frac} fraction bits; no correctly rounded result")
        if abs(got) >= INT64_BOUND and raw.dtype != object:  # beyond int64: exact Python ints
            raw = raw.astype(object)
        raw[i] = got
    if rounding is Rounding.TOWARD_ZERO:  # never an integer (v != 0): negatives go up by one
        raw = raw + (nonzero & (hi <= 0)).astype(np.int64)
    if (~nonzero).any():
        raw[~nonzero] = div_round(np.array([spec.at_zero.numerator << out_frac]),
                                  spec.at_zero.denominator, rounding)[0]
    return raw


# --- tables ---------------------------------------------------------------------------------
RawFn = Callable[[np.ndarray], np.ndarray]
"""Distinct input codes (sorted int64) -> raw rounded values (int64 or Python-int object array)."""


@functools.lru_cache(maxsize=64)  # <= 64 tables of <= 2**16 entries (32 MiB)
def _table(key, lo: int, hi: int, raw_fn: RawFn) -> np.ndarray:
    del key  # the value that identifies raw_fn (hashable: op, parameters, formats, rounding)
    table = raw_fn(np.arange(lo, hi + 1, dtype=np.int64))
    table.setflags(write=False)
    return table


class _Keyed:
    """A raw function hashed and compared by `key` only (so the cache matches by value)."""

    def __init__(self, key, fn: RawFn):
        self.key, self.fn = key, fn

    def __call__(self, codes):
        return self.fn(codes)

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, _Keyed) and other.key == self.key


def raw_values(x: np.ndarray, lo: int, hi: int, key, raw_fn: RawFn) -> np.ndarray:
    """Raw values of the codes `x` (all in ``[lo, hi]``): a cached table over ``lo..hi`` when
    it holds at most ``2**TABLE_MAX_WORD_BITS`` codes, else `raw_fn` on the distinct codes."""
    x = np.asarray(x, dtype=np.int64)
    if x.size and (int(x.min()) < lo or int(x.max()) > hi):
        bad = int(x.min()) if int(x.min()) < lo else int(x.max())
        raise InputError(f"{key[0]}: input code {bad} is outside the input format's codes [{lo}, {hi}]")
    if hi - lo < 1 << TABLE_MAX_WORD_BITS:
        return _table(key, lo, hi, _Keyed(key, raw_fn))[x - lo]
    uniq, inverse = np.unique(x, return_inverse=True)
    return raw_fn(uniq)[inverse.reshape(x.shape)]


def lookup(x, *, in_fmt: QFormat, out_fmt: QFormat, overflow, counter: OverflowCounter | None,
           key, raw_fn: RawFn) -> np.ndarray:
    """`raw_values` of codes of `in_fmt`, narrowed to `out_fmt` per `overflow`; `counter`
    sees every raw value."""
    raw = raw_values(x, in_fmt.min_code, in_fmt.max_code, key, raw_fn)
    return narrow(raw, out_fmt.word_bits, out_fmt.signed, overflow=overflow, counter=counter)


def table_cache_clear() -> None:
    """Drop every cached table (tests; memory)."""
    _table.cache_clear()
