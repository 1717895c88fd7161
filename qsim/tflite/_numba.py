"""Compiled (Numba) MultiplyByQuantizedMultiplier over a channels-last array.

The same integer formulas as `qsim.tflite.arith.multiply_by_quantized_multiplier`
(tests compare the two value for value, ties included); one pass per element instead of
the dozen NumPy temporaries of the vectorised form, which dominate a MobileNet run.
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


@njit(cache=True)
def _mac_tail(acc, bias, acc_bits, saturate, q, shift, single_rounding, out_zp,
              has_lo, act_lo, has_hi, act_hi, qmin, qmax, out, stats):
    """One pass over a MAC op's exact sums acc[M, C] (float, integer-valued, exact):
    + bias -> accumulator narrowing at acc_bits (counted) -> MBQM -> + out_zp ->
    activation clamp (counted) -> dtype saturation (counted) -> out.

    stats: [acc events, acc min, acc max, act events, act min, act max,
            requant events, requant min, requant max] (min/max of the pre-narrowing values).
    """
    m, c = acc.shape
    lo = -(np.int64(1) << (acc_bits - 1))
    hi = (np.int64(1) << (acc_bits - 1)) - 1
    mask = (np.int64(1) << acc_bits) - 1 if acc_bits < 64 else np.int64(-1)
    ev0 = 0
    mn0 = np.iinfo(np.int64).max
    mx0 = np.iinfo(np.int64).min
    ev1 = 0
    mn1 = mn0
    mx1 = mx0
    ev2 = 0
    mn2 = mn0
    mx2 = mx0
    k = 0
    for i in range(m):
        for j in range(c):
            v = np.int64(acc[i, j]) + bias[j]
            if v < mn0:
                mn0 = v
            if v > mx0:
                mx0 = v
            if v < lo or v > hi:
                ev0 += 1
                if saturate:
                    v = lo if v < lo else hi
                elif acc_bits < 64:
                    v = ((v - lo) & mask) + lo
            qq = q[j]
            sh = shift[j]
            if single_rounding:
                total = 31 - sh
                r = (v * qq + (np.int64(1) << (total - 1))) >> total
            else:
                left = sh if sh > 0 else 0
                right = -sh if sh < 0 else 0
                a = v << left
                a = ((a + (np.int64(1) << 31)) & np.int64(0xFFFFFFFF)) - (np.int64(1) << 31)
                if a == _I32_MIN and qq == _I32_MIN:
                    r = np.int64(_I32_MAX)
                else:
                    ab = a * qq
                    if ab >= 0:
                        r = (ab + (np.int64(1) << 30)) >> 31
                    else:
                        r = -((-(ab + 1 - (np.int64(1) << 30))) >> 31)
                if right > 0:
                    msk = (np.int64(1) << right) - 1
                    rem = r & msk
                    thr = (msk >> 1) + (1 if r < 0 else 0)
                    r = (r >> right) + (1 if rem > thr else 0)
            r += out_zp
            if has_lo or has_hi:
                if r < mn1:
                    mn1 = r
                if r > mx1:
                    mx1 = r
                if has_lo and r < act_lo:
                    ev1 += 1
                    r = act_lo
                elif has_hi and r > act_hi:
                    ev1 += 1
                    r = act_hi
            if r < mn2:
                mn2 = r
            if r > mx2:
                mx2 = r
            if r < qmin:
                ev2 += 1
                r = qmin
            elif r > qmax:
                ev2 += 1
                r = qmax
            out[k] = r
            k += 1
    stats[0] = ev0
    stats[1] = mn0
    stats[2] = mx0
    stats[3] = ev1
    stats[4] = mn1
    stats[5] = mx1
    stats[6] = ev2
    stats[7] = mn2
    stats[8] = mx2


def mac_tail(acc2d, bias, acc_bits, saturate, q, shift, single_rounding, out_zp, act, qrange, out_dtype):
    """Run `_mac_tail`; returns (codes [M*C] in out_dtype, stats int64[9])."""
    m, c = acc2d.shape
    q = np.ascontiguousarray(np.broadcast_to(np.asarray(q, np.int64), (c,)))
    shift = np.ascontiguousarray(np.broadcast_to(np.asarray(shift, np.int64), (c,)))
    b = np.zeros(c, np.int64) if bias is None else np.ascontiguousarray(bias, dtype=np.int64)
    lo, hi = act
    out = np.empty(m * c, out_dtype)
    stats = np.zeros(9, np.int64)
    _mac_tail(np.ascontiguousarray(acc2d), b, int(acc_bits), bool(saturate), q, shift, bool(single_rounding),
              int(out_zp), lo is not None, 0 if lo is None else int(lo), hi is not None, 0 if hi is None else int(hi),
              int(qrange[0]), int(qrange[1]), out, stats)
    return out, stats
