"""Compiled (Numba) paths of `qsim.fixed.cast`: one fused pass per element.

Each kernel computes exactly what the NumPy path computes (same integer formulas, see
`qsim.fixed.modes`), and reduces the overflow statistics (events, min and max of the exact
pre-narrowing value) in the same loop. Tests compare both paths code for code.

When an element leaves the int64-safe domain (a scaled float with ``|v| >= 2**63`` or an
infinity), the quantize kernel stops and reports it; the caller then uses the NumPy path,
which handles those elements exactly with Python ints.
"""
from __future__ import annotations

import numpy as np

from qsim.fixed.counters import OverflowCounter
from qsim.fixed.format import QFormat
from qsim.fixed.modes import Overflow, Rounding, round_up

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a declared dependency
    njit = None



def available() -> bool:
    """True when Numba can be imported (it is a dependency; False only in broken installs)."""
    return njit is not None


if njit is not None:
    _round_up = njit(cache=True, inline="always")(round_up)  # the one rule of qsim.fixed.modes

    @njit(cache=True)
    def _narrow_one(r, signed, bits, lo, hi, saturate):
        # r is exact (int64); returns the code of a `bits` word
        if r < lo:
            return lo if saturate else _wrap_one(r, signed, bits, hi)
        if r > hi:
            return hi if saturate else _wrap_one(r, signed, bits, hi)
        return r

    @njit(cache=True, inline="always")
    def _observe_narrow(r, i, signed, bits, lo, hi, saturate, events, mn, mx):
        # The shared end of every element loop: track the exact min/max and the events
        # (values outside [lo, hi]) for the counter, then narrow r to the word.
        if i == 0 or r < mn:
            mn = r
        if i == 0 or r > mx:
            mx = r
        if r < lo or r > hi:
            events += 1
        return _narrow_one(r, signed, bits, lo, hi, saturate), events, mn, mx

    @njit(cache=True)
    def _wrap_one(r, signed, bits, hi):
        if bits == 64:
            return r
        span = np.int64(1) << np.int64(bits)  # bits <= 63 here
        m = r & (span - np.int64(1))  # low bits (two's complement), 0 <= m < span
        if signed and m > hi:
            m -= span
        return m

    @njit(cache=True)
    def _quantize_kernel(x, frac_bits, mode, saturate, signed, bits, lo, hi, out):
        """Returns (index of the first element outside the int64-safe domain or -1, events, min, max)."""
        scale = 2.0**frac_bits
        events = 0
        mn = np.int64(0)
        mx = np.int64(0)
        two63 = 9223372036854775808.0
        for i in range(x.size):
            v = x[i] * scale  # exact: scaling by a power of two
            if not (abs(v) < two63):
                return i, events, mn, mx
            fl = np.floor(v)
            d = v - fl  # exact fractional part in [0, 1)
            r = np.int64(fl)
            if _round_up(d, 0.5, v < 0.0, (r & 1) == 1, mode):
                r += 1
            out[i], events, mn, mx = _observe_narrow(r, i, signed, bits, lo, hi, saturate, events, mn, mx)
        return -1, events, mn, mx

    @njit(cache=True)
    def _rescale_kernel(raw, shift, mode, saturate, signed, bits, lo, hi, out):
        """round(raw / 2**shift) (0 <= shift <= 63) then narrow; returns (events, min, max)."""
        events = 0
        mn = np.int64(0)
        mx = np.int64(0)
        s = np.int64(shift)
        one = np.int64(1)
        for i in range(raw.size):
            x = raw[i]
            if shift == 0:
                r = x
            else:
                q = x >> s
                rem = x - (q << s)  # 0 <= rem < 2**s; q << s cannot overflow (|q << s| <= |x|)
                half = one << (s - one)
                r = q
                if _round_up(rem, half, x < 0, (q & 1) == 1, mode):
                    r += 1
            out[i], events, mn, mx = _observe_narrow(r, i, signed, bits, lo, hi, saturate, events, mn, mx)
        return events, mn, mx

    @njit(cache=True)
    def _saturating_sum_kernel(terms, lo, hi, out):
        """Row-wise running sum clamped to [lo, hi] at each step; returns (events, min, max)."""
        events = 0
        mn = np.int64(0)
        mx = np.int64(0)
        for i in range(terms.shape[0]):
            acc = np.int64(0)
            for j in range(terms.shape[1]):
                s = acc + terms[i, j]  # |acc| <= 2**62, |term| <= 2**62: no int64 overflow
                if s < mn:
                    mn = s
                if s > mx:
                    mx = s
                if s > hi:
                    events += 1
                    acc = hi
                elif s < lo:
                    events += 1
                    acc = lo
                else:
                    acc = s
            out[i] = acc
        return events, mn, mx


def _peak(mn, mx) -> int:
    return max(abs(int(mn)), abs(int(mx)))


def quantize(x: np.ndarray, fmt: QFormat, rounding: Rounding, overflow: Overflow,
             counter: OverflowCounter | None) -> np.ndarray | None:
    """Compiled `qsim.fixed.cast.quantize` for finite-checked float64 `x`; None when it cannot
    (infinities, codes beyond int64): the caller then takes the exact NumPy/Python-int path."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.size, dtype=np.int64)
    bad, events, mn, mx = _quantize_kernel(
        flat, fmt.frac_bits, rounding.code, overflow is Overflow.SATURATE, fmt.signed,
        fmt.word_bits, fmt.min_code, fmt.max_code, out,
    )
    if bad >= 0:  # nothing was counted yet: the caller redoes it exactly
        return None
    if counter is not None and flat.size:
        counter.record(events=events, elements=flat.size, peak=_peak(mn, mx), lo=fmt.min_code, hi=fmt.max_code)
    return out.reshape(x.shape)


def rescale(raw: np.ndarray, shift: int, fmt: QFormat, rounding: Rounding, overflow: Overflow,
            counter: OverflowCounter | None) -> np.ndarray:
    """Compiled `qsim.fixed.cast.rescale` for int64 `raw` and ``0 <= shift <= 63``."""
    flat = np.ascontiguousarray(raw).reshape(-1)
    out = np.empty(flat.size, dtype=np.int64)
    events, mn, mx = _rescale_kernel(
        flat, shift, rounding.code, overflow is Overflow.SATURATE, fmt.signed,
        fmt.word_bits, fmt.min_code, fmt.max_code, out,
    )
    if counter is not None and flat.size:
        counter.record(events=events, elements=flat.size, peak=_peak(mn, mx), lo=fmt.min_code, hi=fmt.max_code)
    return out.reshape(raw.shape)


def saturating_sum_2d(terms: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, int, int]:
    """Row-wise saturating running sum of a C-contiguous int64 (rows, n) array."""
    out = np.empty(terms.shape[0], dtype=np.int64)
    events, mn, mx = _saturating_sum_kernel(terms, np.int64(lo), np.int64(hi), out)
    return out, int(events), _peak(mn, mx)
