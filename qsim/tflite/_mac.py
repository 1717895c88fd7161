"""Fused compiled (Numba) MAC operators: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED.

One pass per output pixel, no im2col, no int64 temporaries: the exact sum
``sum (w - w_zp)(x - in_zp)`` over the taps inside the image, then the tail (bias,
accumulator narrowing at ``acc_bits``, requantization, ``+ out_zp``, activation clamp,
dtype saturation, the three counters) on that pixel's channels, written straight to the
stored dtype.

Contract (the same values and counts as ``ops.conv2d_sums`` / ``ops.depthwise_sums`` /
``ops.fully_connected_acc`` followed by ``executor`` narrow_acc -> requantize -> finish;
tests/tflite/test_tflite_mac.py checks that against `qsim.tflite.ref`, hypothesis-drawn):

* x: [N, H, W, IC] int8/uint8 codes; ``zp`` the input zero point as a scalar of the
  weights' float type; taps outside the image are skipped (= padding x - zp with 0).
* w: the filter minus its zero point, float32 or float64, chosen at prepare time by
  ``ops.exact_float_dtype``: every partial sum of every summation order is an integer
  below 2^24 (float32) or 2^53 (float64), so the float sum is the exact integer sum.
  Conv layout [KH, KW, FIC, OC] (groups = IC / FIC), depthwise [KH, KW, OC].
* The tail per element, v = exact sum + bias (int64): site ``acc`` sees v against
  [-2^(acc_bits-1), 2^(acc_bits-1) - 1], then saturate or two's-complement wrap; then
  ``MultiplyByQuantizedMultiplier`` (double rounding: SRDHM ties toward +inf, RDBPOT ties
  away from zero; or single rounding) per channel, or for the reference int8
  FULLY_CONNECTED ``round(double(v) * eff)`` (halves away from zero, saturated to int32);
  ``+ out_zp``; site ``act`` (only when the fused activation has a bound; a missing bound
  is +-2^62, as ``Kernel.finish``) clamps to it; site
  ``requant`` saturates to [qmin, qmax].
* stats (int64[9], updated in place): [acc events, acc min, acc max, act events, act min,
  act max, requant events, requant min, requant max], min/max of the values before that
  site's narrowing (``record_stats`` in the executor turns them into counters).

Output pixels are computed four at a time along a row (each weight load feeds four
accumulators); a lane past the row end or a tap outside the image contributes x - zp = 0,
which adds an exact 0.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

_I32_MIN = -(2**31)
_I32_MAX = 2**31 - 1
_R = 4  # output pixels per block
# The MAC rows' float arithmetic is on integers: masks 0/1, x - zp, w - w_zp and sums whose
# every regrouping is bounded by sum |w - w_zp| * max |x - zp| < 2^24 (float32) / 2^53
# (float64) (``ops.exact_float_dtype``). No operation rounds, so fusing multiply-adds
# (contract) or reordering the sums (reassoc) cannot change a bit; measured 1.5-2x on the
# 3x3 convolutions. (Not for `tail`: its float requantization rounds.)
_EXACT_FLOAT_MATH = {"contract", "reassoc"}


@njit(cache=True, inline="always")
def _mbqm(v, qq, sh, single_rounding):
    """MultiplyByQuantizedMultiplier of one int64 value (branch-free, as `_numba._mbqm_lastaxis`)."""
    if single_rounding:
        total = 31 - sh
        return (v * qq + (np.int64(1) << (total - 1))) >> total
    left = sh if sh > 0 else 0
    right = -sh if sh < 0 else 0
    a = v << left
    a = ((a + (np.int64(1) << 31)) & np.int64(0xFFFFFFFF)) - (np.int64(1) << 31)  # int32 wrap
    # SRDHM: (a*q + nudge) / 2^31 in C division, nudge = 2^30 or 1 - 2^30 by the sign of a*q;
    # for a*q < 0 that truncation equals floor((a*q + 2^30) / 2^31), as for a*q >= 0
    r = (a * qq + (np.int64(1) << 30)) >> 31
    if a == _I32_MIN and qq == _I32_MIN:
        r = np.int64(_I32_MAX)
    mask = (np.int64(1) << right) - 1
    rem = r & mask
    thr = (mask >> 1) + (1 if r < 0 else 0)
    return (r >> right) + (1 if rem > thr else 0)


# tail parameters, one int64 vector per operator (few arguments: Numba's call overhead
# grows with each one, and the small models run many tiny operators)
T_FLOAT_REQUANT, T_ACC_BITS, T_SATURATE, T_SINGLE_ROUNDING, T_OUT_ZP = 0, 1, 2, 3, 4
T_HAS_LO, T_ACT_LO, T_HAS_HI, T_ACT_HI, T_QMIN, T_QMAX, T_FAST_DOUBLE = 5, 6, 7, 8, 9, 10, 11
T_ACC_LO, T_ACC_HI, T_ACC_MASK = 12, 13, 14  # the accumulator word's range, 2^bits - 1 (-1 at 64)


def tail_params(*, acc_bits: int = 32, saturate: bool = False, single_rounding: bool = False, out_zp: int = 0,
                act=(None, None), qrange=(-128, 127), float_requant: bool = False,
                fast_double: bool = False) -> np.ndarray:
    """The tail's scalars as the int64 vector the kernels read (``act`` bounds may be None;
    ``fast_double`` only as `fast_double` decides it)."""
    lo, hi = act
    # the accumulator's bounds in Python ints: in the kernels 1 << 63 would overflow int64
    acc_lo, acc_hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    acc_mask = (1 << acc_bits) - 1 if acc_bits < 64 else -1
    return np.array([float_requant, acc_bits, saturate, single_rounding, out_zp, lo is not None,
                     0 if lo is None else lo, hi is not None, 0 if hi is None else hi, *qrange, fast_double,
                     acc_lo, acc_hi, acc_mask], np.int64)


def fast_double(chan: np.ndarray, sum_bound: np.ndarray, acc_bits: int, single_rounding: bool,
                float_requant: bool) -> bool:
    """May `tail` drop the accumulator narrowing and the int32 wrap of its double-rounding loop?

    Yes when, for every channel j, |sum| <= sum_bound[j] (``ops.sum_bound``) proves v = sum +
    bias inside the signed ``acc_bits`` word with acc_bits <= 32 (so no acc event, narrowing
    and int32 wrap are the identity) and the left shift is 0 (no shift to wrap).
    """
    if single_rounding or float_requant or acc_bits > 32:
        return False
    v_max = np.asarray(sum_bound, np.int64) + np.abs(chan[C_BIAS])
    return bool(np.all(v_max <= (1 << (acc_bits - 1)) - 1) and np.all(chan[C_LEFT] == 0))


C_BIAS, C_Q, C_SHIFT, C_LEFT, C_RIGHT, C_MASK, C_HALF, C_TOTAL, C_NUDGE = range(9)


def chan_params(bias, q, shift, oc: int) -> np.ndarray:
    """int64[9, OC], per output channel (scalars broadcast): bias (0 if None), multiplier q,
    shift, and the constants `tail` derives from them once here: left = max(shift, 0),
    right = max(-shift, 0), mask = 2^right - 1, half = mask >> 1 (double rounding), total =
    31 - shift, nudge = 2^(total - 1) (single rounding).

    Precondition (checked): 0 <= q < 2^31 (QuantizeMultiplier's range), so SRDHM's one
    saturating case, q = a = -2^31, cannot occur; shift <= 30 (total >= 1).
    """
    out = np.zeros((9, oc), np.int64)
    if bias is not None:
        out[C_BIAS] = bias
    out[C_Q] = q
    out[C_SHIFT] = shift
    if np.any(out[C_Q] < 0) or np.any(out[C_Q] > _I32_MAX) or np.any(out[C_SHIFT] > 30):
        raise ValueError(f"multipliers outside [0, 2^31) or shifts > 30: {out[C_Q].tolist()[:4]}, "
                         f"{out[C_SHIFT].tolist()[:4]}")
    out[C_LEFT] = np.maximum(out[C_SHIFT], 0)
    out[C_RIGHT] = np.maximum(-out[C_SHIFT], 0)
    out[C_MASK] = (np.int64(1) << out[C_RIGHT]) - 1
    out[C_HALF] = out[C_MASK] >> 1
    out[C_TOTAL] = 31 - out[C_SHIFT]
    out[C_NUDGE] = np.int64(1) << (out[C_TOTAL] - 1)
    return out


@njit(cache=True, inline="always")
def _act_bounds(tp):
    """The activation clamp's bounds, +-2^62 for a missing one (as ``Kernel.finish``)."""
    big = np.int64(1) << 62
    return (tp[T_ACT_LO] if tp[T_HAS_LO] else -big), (tp[T_ACT_HI] if tp[T_HAS_HI] else big)


@njit(cache=True, inline="always")
def _acc_site(v, lo, hi, mask, saturate, wrap, e, mn, mx):
    """Site ``acc``: count v against [lo, hi], then saturate, or wrap (mask = 2^bits - 1; at
    64 bits nothing to do). Selects only, so the channel loop vectorizes."""
    mn = min(mn, v)
    mx = max(mx, v)
    e += 1 if (v < lo or v > hi) else 0
    if saturate:
        return min(max(v, lo), hi), e, mn, mx
    return (((v - lo) & mask) + lo if wrap else v), e, mn, mx  # the wrap is the identity inside the range


@njit(cache=True, inline="always")
def _out_sites(r, act, alo, ahi, qmin, qmax, e1, mn1, mx1, e2, mn2, mx2):
    """Sites ``act`` (if the activation has a bound) and ``requant`` on r = requantized + out_zp."""
    if act:
        mn1 = min(mn1, r)
        mx1 = max(mx1, r)
        e1 += 1 if (r < alo or r > ahi) else 0
        r = min(max(r, alo), ahi)
    mn2 = min(mn2, r)
    mx2 = max(mx2, r)
    e2 += 1 if (r < qmin or r > qmax) else 0
    return min(max(r, qmin), qmax), e1, mn1, mx1, e2, mn2, mx2


@njit(cache=True)
def tail(acc, chan, eff, tp, out, st):
    """The tail on exact accumulators without bias: acc[P, C] (float sums of P MAC pixels, or
    int64 sums of MEAN) -> out[P, C] codes, channel j using chan[:, j] and eff[j]; st updated.

    One loop per requantization kind (so each vectorizes): reference int8 FULLY_CONNECTED
    float, single rounding, double rounding (`_mbqm` with the channel's constants and no
    saturating case, 0 <= q < 2^31).
    """
    saturate = tp[T_SATURATE] != 0
    wrap = tp[T_ACC_BITS] < 64 and not saturate
    out_zp, qmin, qmax = tp[T_OUT_ZP], tp[T_QMIN], tp[T_QMAX]
    lo, hi, mask = tp[T_ACC_LO], tp[T_ACC_HI], tp[T_ACC_MASK]
    act = tp[T_HAS_LO] != 0 or tp[T_HAS_HI] != 0
    alo, ahi = _act_bounds(tp)
    e0, mn0, mx0 = st[0], st[1], st[2]
    e1, mn1, mx1 = st[3], st[4], st[5]
    e2, mn2, mx2 = st[6], st[7], st[8]
    # the activation's clamp inside [qmin, qmax]: the requant site sees clamp(r, alo, ahi), whose
    # min / max are the clamped act min / max (clamping is monotone) and which never leaves the dtype
    act_inside = act and alo >= qmin and ahi <= qmax
    n = acc.shape[1]
    for p in range(acc.shape[0]):
        if tp[T_FLOAT_REQUANT] != 0:
            for j in range(n):
                v, e0, mn0, mx0 = _acc_site(np.int64(acc[p, j]) + chan[C_BIAS, j], lo, hi, mask, saturate,
                                            wrap, e0, mn0, mx0)
                f = np.float64(v) * eff[j]
                a = np.floor(abs(f) + 0.5)
                a = -a if f < 0 else a
                r = np.int64(min(max(a, np.float64(_I32_MIN)), np.float64(_I32_MAX))) + out_zp
                out[p, j], e1, mn1, mx1, e2, mn2, mx2 = _out_sites(r, act, alo, ahi, qmin, qmax,
                                                                   e1, mn1, mx1, e2, mn2, mx2)
        elif tp[T_FAST_DOUBLE] != 0 and act_inside:  # as below; the act clamp lands inside the dtype
            for j in range(n):
                v = np.int64(acc[p, j]) + chan[C_BIAS, j]
                mn0 = min(mn0, v)
                mx0 = max(mx0, v)
                r = (v * chan[C_Q, j] + (np.int64(1) << 30)) >> 31  # SRDHM (see _mbqm)
                rem = r & chan[C_MASK, j]
                r = (r >> chan[C_RIGHT, j]) + (1 if rem > chan[C_HALF, j] + (1 if r < 0 else 0) else 0)  # RDBPOT
                r += out_zp
                mn1 = min(mn1, r)
                mx1 = max(mx1, r)
                e1 += 1 if (r < alo or r > ahi) else 0
                out[p, j] = min(max(r, alo), ahi)  # inside [qmin, qmax]: no requant event
        elif tp[T_FAST_DOUBLE] != 0:  # `fast_double`: v in range, no left shift (site acc: min/max only)
            for j in range(n):
                v = np.int64(acc[p, j]) + chan[C_BIAS, j]
                mn0 = min(mn0, v)
                mx0 = max(mx0, v)
                r = (v * chan[C_Q, j] + (np.int64(1) << 30)) >> 31  # SRDHM (see _mbqm)
                rem = r & chan[C_MASK, j]
                r = (r >> chan[C_RIGHT, j]) + (1 if rem > chan[C_HALF, j] + (1 if r < 0 else 0) else 0)  # RDBPOT
                out[p, j], e1, mn1, mx1, e2, mn2, mx2 = _out_sites(r + out_zp, act, alo, ahi, qmin, qmax,
                                                                   e1, mn1, mx1, e2, mn2, mx2)
        elif tp[T_SINGLE_ROUNDING] != 0:
            for j in range(n):
                v, e0, mn0, mx0 = _acc_site(np.int64(acc[p, j]) + chan[C_BIAS, j], lo, hi, mask, saturate,
                                            wrap, e0, mn0, mx0)
                r = ((v * chan[C_Q, j] + chan[C_NUDGE, j]) >> chan[C_TOTAL, j]) + out_zp
                out[p, j], e1, mn1, mx1, e2, mn2, mx2 = _out_sites(r, act, alo, ahi, qmin, qmax,
                                                                   e1, mn1, mx1, e2, mn2, mx2)
        else:
            for j in range(n):
                v, e0, mn0, mx0 = _acc_site(np.int64(acc[p, j]) + chan[C_BIAS, j], lo, hi, mask, saturate,
                                            wrap, e0, mn0, mx0)
                a = v << chan[C_LEFT, j]
                a = ((a + (np.int64(1) << 31)) & np.int64(0xFFFFFFFF)) - (np.int64(1) << 31)  # int32 wrap
                r = (a * chan[C_Q, j] + (np.int64(1) << 30)) >> 31  # SRDHM (see _mbqm)
                rem = r & chan[C_MASK, j]
                r = (r >> chan[C_RIGHT, j]) + (1 if rem > chan[C_HALF, j] + (1 if r < 0 else 0) else 0)  # RDBPOT
                out[p, j], e1, mn1, mx1, e2, mn2, mx2 = _out_sites(r + out_zp, act, alo, ahi, qmin, qmax,
                                                                   e1, mn1, mx1, e2, mn2, mx2)
    if act_inside and tp[T_FAST_DOUBLE] != 0 and tp[T_FLOAT_REQUANT] == 0 and n > 0 and acc.shape[0] > 0:
        mn2 = min(mn2, min(max(mn1, alo), ahi))
        mx2 = max(mx2, min(max(mx1, alo), ahi))
    st[0], st[1], st[2] = e0, mn0, mx0
    st[3], st[4], st[5] = e1, mn1, mx1
    st[6], st[7], st[8] = e2, mn2, mx2


@njit(cache=True, inline="always")
def _acc4(acc, w, ky, kx, c, j0, n, x0, x1, x2, x3):
    """acc[r, j0 + j] += x_r * w[ky, kx, c, j0 + j] for the four pixel lanes r, j < n."""
    for jj in range(n):
        j = j0 + jj
        wv = w[ky, kx, c, j]
        acc[0, j] += x0 * wv
        acc[1, j] += x1 * wv
        acc[2, j] += x2 * wv
        acc[3, j] += x3 * wv


@njit(cache=True, fastmath=_EXACT_FLOAT_MATH)
def _conv_row(x, zp, w, geom, chan, eff, tp, out, b, oy, acc, st):
    """One output row out[b, oy] of `conv_fused`, four pixels at a time."""
    sh, sw, dh, dw, ph, pw = geom[0], geom[1], geom[2], geom[3], geom[4], geom[5]
    _, h, wd, ic = x.shape
    kh, kw, fic, oc = w.shape
    ow = out.shape[2]
    groups = ic // fic
    ocg = oc // groups
    zero = zp - zp
    one = zero + np.float32(1)  # keeps the float type of zp (float32 + int would widen)
    for ox0 in range(0, ow, _R):
        acc[:, :] = zero
        for ky in range(kh):
            iy = oy * sh - ph + ky * dh
            if iy < 0 or iy >= h:
                continue
            for kx in range(kw):
                i0 = (ox0 + 0) * sw - pw + kx * dw
                i1 = (ox0 + 1) * sw - pw + kx * dw
                i2 = (ox0 + 2) * sw - pw + kx * dw
                i3 = (ox0 + 3) * sw - pw + kx * dw
                m0 = one if (0 <= i0 < wd and ox0 + 0 < ow) else zero
                m1 = one if (0 <= i1 < wd and ox0 + 1 < ow) else zero
                m2 = one if (0 <= i2 < wd and ox0 + 2 < ow) else zero
                m3 = one if (0 <= i3 < wd and ox0 + 3 < ow) else zero
                if m0 + m1 + m2 + m3 == zero:
                    continue
                i0 = min(max(i0, 0), wd - 1)
                i1 = min(max(i1, 0), wd - 1)
                i2 = min(max(i2, 0), wd - 1)
                i3 = min(max(i3, 0), wd - 1)
                for g in range(groups):
                    for c in range(fic):
                        ci = g * fic + c
                        x0 = (x[b, iy, i0, ci] - zp) * m0
                        x1 = (x[b, iy, i1, ci] - zp) * m1
                        x2 = (x[b, iy, i2, ci] - zp) * m2
                        x3 = (x[b, iy, i3, ci] - zp) * m3
                        if groups == 1:  # a constant offset: the loop vectorizes
                            _acc4(acc, w, ky, kx, c, 0, oc, x0, x1, x2, x3)
                        else:
                            _acc4(acc, w, ky, kx, c, g * ocg, ocg, x0, x1, x2, x3)
        nv = min(_R, ow - ox0)
        tail(acc[:nv], chan, eff, tp, out[b, oy, ox0:ox0 + nv], st)


@njit(cache=True, fastmath=_EXACT_FLOAT_MATH)
def _dot_row(x, zp, w, chan, eff, tp, out, b, oy, xf, acc, st):
    """One output row of a pointwise conv (stride 1, no padding) with the filter as w[0, 0] =
    [OC, IC]: per output channel, four dot products over IC (long input depths vectorize
    along IC instead of along the few output channels)."""
    ic = x.shape[3]
    oc = w.shape[2]
    ow = out.shape[2]
    zero = zp - zp
    for ox0 in range(0, ow, _R):
        nv = min(_R, ow - ox0)
        for r in range(_R):
            for c in range(ic):
                xf[r, c] = (x[b, oy, ox0 + r, c] - zp) if r < nv else zero
        for j in range(oc):
            s0 = zero
            s1 = zero
            s2 = zero
            s3 = zero
            for c in range(ic):
                wv = w[0, 0, j, c]
                s0 += xf[0, c] * wv
                s1 += xf[1, c] * wv
                s2 += xf[2, c] * wv
                s3 += xf[3, c] * wv
            acc[0, j] = s0
            acc[1, j] = s1
            acc[2, j] = s2
            acc[3, j] = s3
        tail(acc[:nv], chan, eff, tp, out[b, oy, ox0:ox0 + nv], st)


@njit(cache=True, fastmath=_EXACT_FLOAT_MATH)
def _dw_row(x, zp, w, geom, chan, eff, tp, out, b, oy, acc, st):
    """One output row out[b, oy] of `depthwise_fused` (the tail on four pixels at a time)."""
    sh, sw, dh, dw, ph, pw, mult = geom[0], geom[1], geom[2], geom[3], geom[4], geom[5], geom[6]
    _, h, wd, ic = x.shape
    kh, kw, oc = w.shape
    ow = out.shape[2]
    zero = zp - zp
    for ox0 in range(0, ow, _R):
        nv = min(_R, ow - ox0)
        for p in range(nv):
            ox = ox0 + p
            acc[p, :] = zero
            for ky in range(kh):
                iy = oy * sh - ph + ky * dh
                if iy < 0 or iy >= h:
                    continue
                for kx in range(kw):
                    ix = ox * sw - pw + kx * dw
                    if ix < 0 or ix >= wd:
                        continue
                    if mult == 1:
                        for c in range(oc):
                            acc[p, c] += (x[b, iy, ix, c] - zp) * w[ky, kx, c]
                    else:
                        for ci in range(ic):
                            xv = x[b, iy, ix, ci] - zp
                            for m in range(mult):
                                acc[p, ci * mult + m] += xv * w[ky, kx, ci * mult + m]
        tail(acc[:nv], chan, eff, tp, out[b, oy, ox0:ox0 + nv], st)


@njit(cache=True)
def _merge_stats(st, rows):
    """st <- st combined with every row of per-row stats (sums of events, min of mins, max of maxes)."""
    for r in range(rows.shape[0]):
        for k in range(0, 9, 3):
            st[k] += rows[r, k]
            st[k + 1] = min(st[k + 1], rows[r, k + 1])
            st[k + 2] = max(st[k + 2], rows[r, k + 2])


@njit(cache=True)
def _new_stat_rows(n):
    rows = np.zeros((n, 9), np.int64)
    for r in range(n):
        for k in range(0, 9, 3):
            rows[r, k + 1] = np.iinfo(np.int64).max
            rows[r, k + 2] = np.iinfo(np.int64).min
    return rows


# The same rows, serially or on Numba's threads (one output row per task; each row's
# values are independent and the per-row stats merge exactly, so the bits and counts
# do not depend on the thread count or schedule).
@njit(cache=True, nogil=True)
def _conv_serial(x, zp, w, geom, chan, eff, tp, out, st):
    oh = out.shape[1]
    rows = _new_stat_rows(1)
    acc = np.zeros((_R, out.shape[3]), w.dtype)
    xf = np.zeros((_R, x.shape[3]), w.dtype)
    for r in range(x.shape[0] * oh):
        if geom[6] == 1:
            _dot_row(x, zp, w, chan, eff, tp, out, r // oh, r % oh, xf, acc, rows[0])
        else:
            _conv_row(x, zp, w, geom, chan, eff, tp, out, r // oh, r % oh, acc, rows[0])
    _merge_stats(st, rows)


@njit(cache=True, nogil=True, parallel=True)
def _conv_parallel(x, zp, w, geom, chan, eff, tp, out, st):
    oh = out.shape[1]
    rows = _new_stat_rows(x.shape[0] * oh)
    for r in prange(x.shape[0] * oh):
        acc = np.zeros((_R, out.shape[3]), w.dtype)
        if geom[6] == 1:
            xf = np.zeros((_R, x.shape[3]), w.dtype)
            _dot_row(x, zp, w, chan, eff, tp, out, r // oh, r % oh, xf, acc, rows[r])
        else:
            _conv_row(x, zp, w, geom, chan, eff, tp, out, r // oh, r % oh, acc, rows[r])
    _merge_stats(st, rows)


@njit(cache=True, nogil=True)
def _dw_serial(x, zp, w, geom, chan, eff, tp, out, st):
    oh = out.shape[1]
    rows = _new_stat_rows(1)
    acc = np.zeros((_R, w.shape[2]), w.dtype)
    for r in range(x.shape[0] * oh):
        _dw_row(x, zp, w, geom, chan, eff, tp, out, r // oh, r % oh, acc, rows[0])
    _merge_stats(st, rows)


@njit(cache=True, nogil=True, parallel=True)
def _dw_parallel(x, zp, w, geom, chan, eff, tp, out, st):
    oh = out.shape[1]
    rows = _new_stat_rows(x.shape[0] * oh)
    for r in prange(x.shape[0] * oh):
        acc = np.zeros((_R, w.shape[2]), w.dtype)
        _dw_row(x, zp, w, geom, chan, eff, tp, out, r // oh, r % oh, acc, rows[r])
    _merge_stats(st, rows)


PARALLEL_MIN_MACS = 1 << 21  # below this, starting the threads costs more than it saves
DOT_MIN_DEPTH = 64  # pointwise convs this deep run as dot products (layout 1): 1.3-1.6x measured


def conv_fused(x, zp, w, geom, chan, eff, tp, out, st, parallel: bool = False) -> None:
    """CONV_2D (grouped, strided, dilated; FULLY_CONNECTED as a 1x1 conv) -> out[N, OH, OW, OC].

    geom = (stride h, w, dilation h, w, pad top, left, layout): layout 0 = w [KH, KW, FIC, OC],
    1 = a pointwise conv (stride 1, no padding) with w [1, 1, OC, IC] (`DOT_MIN_DEPTH`);
    chan = `chan_params`; tp = `tail_params`; st updated. With `parallel`, a large layer runs
    its rows on Numba's threads.
    """
    macs = out.size * (w.size // out.shape[3])  # either layout: taps x depth per output
    big = parallel and macs >= PARALLEL_MIN_MACS and out.shape[0] * out.shape[1] > 1
    run = _conv_parallel if big else _conv_serial
    run(x, zp, w, geom, chan, eff, tp, out, st)


def depthwise_fused(x, zp, w, geom, chan, eff, tp, out, st, parallel: bool = False) -> None:
    """DEPTHWISE_CONV_2D (output channel oc reads input channel oc // mult) -> out[N, OH, OW, OC].

    geom = (stride h, w, dilation h, w, pad top, left, multiplier); chan, tp, parallel as `conv_fused`.
    """
    macs = out.size * w.shape[0] * w.shape[1]
    big = parallel and macs >= PARALLEL_MIN_MACS and out.shape[0] * out.shape[1] > 1
    run = _dw_parallel if big else _dw_serial
    run(x, zp, w, geom, chan, eff, tp, out, st)


def pointwise_rows(pixels: int) -> int:
    """Rows to lay N*H*W pixels of a 1x1 conv out in: a multiple-of-4 row length near 64
    (whole 4-pixel blocks, and rows for the threads), else one row."""
    for cols in range(64, 3, -4):
        if pixels % cols == 0:
            return pixels // cols
    return 1


@njit(cache=True, nogil=True)
def binary_fused(x1, x2, bp, tp, out, st):
    """ADD or MUL of two flat same-size code arrays -> out, one pass.

    bp = `binary_params` (mul, zp1, m1 = (q1, s1), zp2, m2, m = (q, shift), left_shift).
    ADD: MBQM(MBQM((x1 - zp1) << left_shift, m1) + MBQM((x2 - zp2) << left_shift, m2), m);
    MUL: MBQM((x1 - zp1)(x2 - zp2), m) (``ops.add`` / ``ops.mul``); then ``+ out_zp`` and
    sites ``act`` / ``requant`` as `tail` (st[3:9]; tp = `tail_params`).
    """
    mul = bp[0] != 0
    zp1, m1q, m1s, zp2, m2q, m2s, q, shift, left_shift = bp[1], bp[2], bp[3], bp[4], bp[5], bp[6], bp[7], bp[8], bp[9]
    single_rounding = tp[T_SINGLE_ROUNDING] != 0
    out_zp, qmin, qmax = tp[T_OUT_ZP], tp[T_QMIN], tp[T_QMAX]
    act = tp[T_HAS_LO] != 0 or tp[T_HAS_HI] != 0
    alo, ahi = _act_bounds(tp)
    e1, mn1, mx1 = st[3], st[4], st[5]
    e2, mn2, mx2 = st[6], st[7], st[8]
    for i in range(out.shape[0]):
        a = np.int64(x1[i]) - zp1
        b = np.int64(x2[i]) - zp2
        if mul:
            r = _mbqm(a * b, q, shift, single_rounding)
        else:
            a = _mbqm(a << left_shift, m1q, m1s, single_rounding)
            b = _mbqm(b << left_shift, m2q, m2s, single_rounding)
            r = _mbqm(a + b, q, shift, single_rounding)
        r += out_zp
        if act:
            mn1 = min(mn1, r)
            mx1 = max(mx1, r)
            e1 += 1 if (r < alo or r > ahi) else 0
            r = min(max(r, alo), ahi)
        mn2 = min(mn2, r)
        mx2 = max(mx2, r)
        e2 += 1 if (r < qmin or r > qmax) else 0
        out[i] = min(max(r, qmin), qmax)
    st[3], st[4], st[5] = e1, mn1, mx1
    st[6], st[7], st[8] = e2, mn2, mx2


@njit(cache=True, nogil=True)
def pool_fused(x, geom, tp, out, st):
    """AVERAGE_POOL_2D (geom[6] != 0) or MAX_POOL_2D over the window clipped to the image.

    geom = (kernel h, w, stride h, w, pad top, left, average); tp = `tail_params`.

    Average (``ops.average_pool`` + ``ops.average_round``): s = sum of raw codes, site ``acc``
    at ``acc_bits`` (saturate or wrap), then (s +- n/2) / n in C division (halves away from
    zero), n = cells inside; max: the largest raw code. Then sites ``act`` / ``requant`` as
    `tail`.
    """
    kh, kw, sh, sw, ph, pw, average = geom[0], geom[1], geom[2], geom[3], geom[4], geom[5], geom[6] != 0
    acc_bits = tp[T_ACC_BITS]
    saturate = tp[T_SATURATE] != 0
    qmin, qmax = tp[T_QMIN], tp[T_QMAX]
    nb, h, wd, c = x.shape
    _, oh, ow, _ = out.shape
    lo, hi, mask = tp[T_ACC_LO], tp[T_ACC_HI], tp[T_ACC_MASK]
    wrap = acc_bits < 64 and not saturate
    act = tp[T_HAS_LO] != 0 or tp[T_HAS_HI] != 0
    alo, ahi = _act_bounds(tp)
    e0, mn0, mx0 = st[0], st[1], st[2]
    e1, mn1, mx1 = st[3], st[4], st[5]
    e2, mn2, mx2 = st[6], st[7], st[8]
    for b in range(nb):
        for oy in range(oh):
            ya = max(oy * sh - ph, 0)
            yb = min(oy * sh - ph + kh, h)
            for ox in range(ow):
                xa = max(ox * sw - pw, 0)
                xb = min(ox * sw - pw + kw, wd)
                n = np.int64((yb - ya) * (xb - xa))
                for ch in range(c):
                    if average:
                        v = np.int64(0)
                        for iy in range(ya, yb):
                            for ix in range(xa, xb):
                                v += x[b, iy, ix, ch]
                        mn0 = min(mn0, v)
                        mx0 = max(mx0, v)
                        e0 += 1 if (v < lo or v > hi) else 0
                        if saturate:
                            v = min(max(v, lo), hi)
                        elif wrap:
                            v = ((v - lo) & mask) + lo
                        num = v + n // 2 if v > 0 else v - n // 2
                        r = abs(num) // n
                        r = -r if num < 0 else r
                    else:
                        r = np.int64(np.iinfo(np.int64).min)
                        for iy in range(ya, yb):
                            for ix in range(xa, xb):
                                r = max(r, np.int64(x[b, iy, ix, ch]))
                    if act:
                        mn1 = min(mn1, r)
                        mx1 = max(mx1, r)
                        e1 += 1 if (r < alo or r > ahi) else 0
                        r = min(max(r, alo), ahi)
                    mn2 = min(mn2, r)
                    mx2 = max(mx2, r)
                    e2 += 1 if (r < qmin or r > qmax) else 0
                    out[b, oy, ox, ch] = min(max(r, qmin), qmax)
    st[0], st[1], st[2] = e0, mn0, mx0
    st[3], st[4], st[5] = e1, mn1, mx1
    st[6], st[7], st[8] = e2, mn2, mx2


def binary_params(mul: bool, zp1: int, m1, zp2: int, m2, m, left_shift: int) -> np.ndarray:
    """`binary_fused`'s int64 vector; m1, m2, m are (q, shift) pairs (m1, m2 unused by MUL)."""
    return np.array([mul, zp1, *m1, zp2, *m2, *m, left_shift], np.int64)


_NO_STATS = np.array([0, np.iinfo(np.int64).max, np.iinfo(np.int64).min] * 3, np.int64)


def new_stats() -> np.ndarray:
    """The stats vector before any element: no events, min = +max, max = -max."""
    return _NO_STATS.copy()
