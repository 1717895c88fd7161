"""Compiled (Numba) MultiplyByQuantizedMultiplier over a channels-last array, and SOFTMAX rows.

The same integer formulas as `qsim.tflite.arith.multiply_by_quantized_multiplier` and
`qsim.tflite.ops.softmax` (tests compare them value for value, ties included); one pass
per element instead of the dozen NumPy temporaries of the vectorised forms.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_I32_MIN = -(2**31)
_I32_MAX = 2**31 - 1


@njit(cache=True)
def _mbqm_lastaxis(x, q, shift, single_rounding, out):
    """out[i] = MBQM(x[i], q[i % C], shift[i % C]) for flat int64 x (C = len(q))."""
    c = q.shape[0]
    n = x.shape[0]
    for i in range(n):
        k = i % c
        qq = q[k]
        sh = shift[k]
        v = x[i]
        if single_rounding:
            total = 31 - sh
            out[i] = (v * qq + (np.int64(1) << (total - 1))) >> total
            continue
        left = sh if sh > 0 else 0
        right = -sh if sh < 0 else 0
        a = v << left
        a = ((a + (np.int64(1) << 31)) & np.int64(0xFFFFFFFF)) - (np.int64(1) << 31)  # int32 wrap
        if a == _I32_MIN and qq == _I32_MIN:
            hi = np.int64(_I32_MAX)
        else:
            ab = a * qq
            if ab >= 0:
                hi = (ab + (np.int64(1) << 30)) >> 31
            else:
                t = -(ab + 1 - (np.int64(1) << 30))  # C truncating division of a negative
                hi = -(t >> 31)
        if right > 0:
            mask = (np.int64(1) << right) - 1
            rem = hi & mask
            thr = (mask >> 1) + (1 if hi < 0 else 0)
            hi = (hi >> right) + (1 if rem > thr else 0)
        out[i] = hi


def mbqm_lastaxis(x: np.ndarray, q: np.ndarray, shift: np.ndarray, single_rounding: bool) -> np.ndarray:
    """MBQM with per-channel (q, shift) along the last axis of x (or scalars broadcast)."""
    x = np.ascontiguousarray(x, dtype=np.int64)
    q = np.ascontiguousarray(np.atleast_1d(q), dtype=np.int64)
    shift = np.ascontiguousarray(np.atleast_1d(shift), dtype=np.int64)
    if q.size != 1 and (x.ndim == 0 or x.shape[-1] != q.size):
        raise ValueError(f"{q.size} multipliers for an array of shape {x.shape}")
    out = np.empty(x.size, np.int64)
    _mbqm_lastaxis(x.reshape(-1), q, shift, bool(single_rounding), out)
    return out.reshape(x.shape)


# --- SOFTMAX (compiled twin of ops.softmax with a prepared exp table) -------------------
@njit(cache=True, inline="always")
def _srdhm(a, b):
    if a == _I32_MIN and b == _I32_MIN:
        return np.int64(_I32_MAX)
    ab = a * b
    t = ab + (np.int64(1) << 30) if ab >= 0 else ab + 1 - (np.int64(1) << 30)
    return (t + ((t >> 63) & np.int64(_I32_MAX))) >> 31  # C division by 2^31


@njit(cache=True, inline="always")
def _rdbpot(x, e):
    mask = (np.int64(1) << e) - 1
    return (x >> e) + (1 if (x & mask) > (mask >> 1) + (1 if x < 0 else 0) else 0)


@njit(cache=True, inline="always")
def _srmpot(x, e):
    """SaturatingRoundingMultiplyByPOT for e in {1, 2}: saturating left shift."""
    return min(max(x << e, np.int64(_I32_MIN)), np.int64(_I32_MAX))


@njit(cache=True)
def _reciprocal(x):
    """ops.get_reciprocal(x, 12) of one x > 0: (1/x mantissa Q0.31, num_bits_over_unit)."""
    bits = 0
    v = x
    while v > 0:
        bits += 1
        v >>= 1
    headroom_plus_one = 32 - bits
    shifted = ((x << headroom_plus_one) & np.int64(0xFFFFFFFF)) - (np.int64(1) << 31)
    s = shifted + _I32_MAX
    half_denominator = (s + 1) // 2 if s >= 0 else -((-(s - 1)) // 2)  # C division
    xr = 1515870810 + _srdhm(half_denominator, np.int64(-1010580540))
    for _ in range(3):
        one_minus = (np.int64(1) << 29) - _srdhm(half_denominator, xr)
        xr = xr + _srmpot(_srdhm(xr, one_minus), 2)
    return _srmpot(xr, 1), 12 - headroom_plus_one


@njit(cache=True, nogil=True)
def softmax_rows(x, table, diff_min, out_min, out_max, out):
    """ops.softmax over the last axis of x[M, C] with e = table[-d] (ops.softmax_exp_table)."""
    m, c = x.shape
    for i in range(m):
        mx = np.int64(x[i, 0])
        for j in range(c):
            mx = max(mx, np.int64(x[i, j]))
        total = np.int64(0)
        for j in range(c):
            d = np.int64(x[i, j]) - mx
            if d >= diff_min:
                total += _rdbpot(table[-d], 12)
        recip, nbou = _reciprocal(total)
        for j in range(c):
            d = np.int64(x[i, j]) - mx
            r = np.int64(out_min)
            if d >= diff_min:
                r = min(max(_rdbpot(_srdhm(recip, table[-d]), nbou + 23) + out_min, out_min), out_max)
            out[i, j] = r
