"""The fused tail of every MAC kernel: bias, accumulator width, requantization, optional ReLU.

One compiled pass per element computes exactly what these `qsim.fixed` calls compute in
sequence (tests compare codes and counters with the Python-int references)::

    acc  = accumulate(sum + bias, acc_bits, overflow=acc_overflow)       # site "acc"
    code = rescale(acc, acc_frac, out_fmt, rounding, overflow)           # site "requant"
    # optional fused ReLU/ReLU6 (qsim.kernels.eltwise.relu), site "act":
    y    = rescale(clip(code, 0, cap_in), out_fmt.frac, act_fmt, act_rounding, act_overflow)
    y    = min(y, cap_out)

Why fuse: a separate pass per step costs more than the arithmetic (memory bound); fused,
the tail reads the accumulator once and writes the codes once, in parallel chunks whose
split does not depend on the thread count (integer results and integer counts are the
same for any split anyway).

Contract: both shifts (``acc_frac - out_frac`` and ``out_frac - act_frac``) are in 0..62
(the callers use the step-by-step `qsim.fixed` path otherwise); ``|sum + bias| < 2**62``; the
accumulator ``acc`` is float64 holding integers (exact, proved by the caller) or int64.
Codes are written as float64 (integer-valued, exact for words <= 53 bits, ready for the
next layer's BLAS) or int64, per the ``out`` array's dtype.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from qsim.fixed.counters import OverflowCounter
from qsim.fixed.format import QFormat
from qsim.fixed.limits import INT64_SAFE
from qsim.fixed.modes import Overflow, Rounding, rounding_offsets
from qsim.kernels import blas, workspace
from qsim.kernels.eltwise import ReluSpec

NO_CAP = np.int64(INT64_SAFE)


@njit(cache=True, inline="always")
def _rshift(v, s, base, neg, par):
    off = base
    if v < 0:
        off += neg
    off += ((v >> s) & 1) * par
    return (v + off) >> s


@njit(cache=True, inline="always")
def _fit(v, lo, hi, saturate, mask):
    if saturate:
        return min(max(v, lo), hi)
    return ((v - lo) & mask) + lo  # two's-complement wrap (mask = 2**bits - 1; -1 for 64 bits)


@njit(cache=True, inline="always")
def _acc_step(v, acc_mode, acc_lo, acc_hi, acc_mask):
    """Accumulator width: 0 none, 1 saturate, 2 wrap."""
    if acc_mode == 0:
        return v
    return _fit(v, acc_lo, acc_hi, acc_mode == 1, acc_mask)


def _make_tail(relu: bool, keep_pre: bool, direct: int):
    """Compile one variant of the tail loop; the flags are compile-time constants (a run-time
    branch on them stops LLVM from vectorizing the loop: 3x slower).

    relu: apply the fused ReLU (stats 4, 5: act events / peak). keep_pre: also write the codes
    before it into `pre`. direct: where each row's sums come from (memory bound layers: the
    sums never go to memory): 0 read them from `acc`; 1 ``x2d[row] @ w`` (a 1x1 convolution
    with few input channels, x2d (rows, K), w (K, C)); 2 a depthwise window (x4 (N,H,W,C),
    w (KH,KW,C*mult), ``geom`` = (sh, sw, pt, pl, dh, dw, ho, wo, mult); a row is an output
    pixel); 3 a KxK convolution window (x4, w (KH,KW,Cin*Cout), geom as for 2). Sums run
    in float64, exact below 2**53 (the caller's proof).
    Stats 0-3: acc events / peak, requant events / peak.
    """

    @njit(cache=True, parallel=True)
    def tail(acc, x2d, x4, w, w3, geom, bias, nch, acc_spec, requant, act, out, pre, nchunk, stats):
        sh, sw, pt, pl, dh, dwl, ho, wo, mult = geom
        acc_mode, acc_lo, acc_hi, acc_mask = acc_spec  # AccumulatorSpec.packed()
        s1, b1, n1, p1, lo1, hi1, sat1, mask1 = requant  # RequantSpec.packed()
        s2, b2, n2, p2, lo2, hi2, sat2, mask2 = act[:8]  # the fused ReLU's RequantSpec, then its caps
        cap_in, cap_out = act[8], act[9]
        if direct == 1:
            nrows = x2d.shape[0]
        elif direct >= 2:
            nrows = x4.shape[0] * ho * wo
        else:
            nrows = acc.size // nch
        kdim = x2d.shape[1]
        hin, win, cin = x4.shape[1], x4.shape[2], x4.shape[3]
        kh, kw = w3.shape[0], w3.shape[1]
        for c in prange(nchunk):
            start = c * nrows // nchunk
            stop = (c + 1) * nrows // nchunk
            racc = np.zeros(nch, dtype=np.float64)
            ev_a = 0
            mn_a = 0
            mx_a = 0
            ev_1 = 0
            mn_1 = 0
            mx_1 = 0
            ev_2 = 0
            mx_2 = 0
            for row in range(start, stop):
                base = row * nch
                if direct == 1:  # exact: every partial sum is an integer below 2**53 (caller's proof)
                    racc[:] = 0.0
                    xr = x2d[row]
                    k = 0
                    while k + 4 <= kdim:  # four input channels per pass over racc (a quarter of the loads/stores)
                        x0, x1, x2, x3 = xr[k], xr[k + 1], xr[k + 2], xr[k + 3]
                        if x0 != 0.0 or x1 != 0.0 or x2 != 0.0 or x3 != 0.0:
                            w0, w1, w2, w3_ = w[k], w[k + 1], w[k + 2], w[k + 3]
                            for ch in range(nch):
                                racc[ch] += (x0 * w0[ch] + x1 * w1[ch]) + (x2 * w2[ch] + x3 * w3_[ch])
                        k += 4
                    for k in range(k, kdim):  # noqa: B020 - the rest after the groups of four
                        xv = xr[k]
                        if xv != 0.0:
                            wk = w[k]
                            for ch in range(nch):
                                racc[ch] += xv * wk[ch]
                elif direct == 3:  # a KxK convolution with few taps x channels (the first layer)
                    b = row // (ho * wo)
                    oy = (row // wo) % ho
                    ox = row % wo
                    racc[:] = 0.0
                    for ky in range(kh):
                        iy = oy * sh - pt + ky * dh
                        if iy < 0 or iy >= hin:
                            continue
                        for kx in range(kw):
                            ix = ox * sw - pl + kx * dwl
                            if ix < 0 or ix >= win:
                                continue
                            xs = x4[b, iy, ix]
                            ws = w3[ky, kx]
                            for ci in range(cin):
                                xv = xs[ci]
                                if xv != 0.0:
                                    for ch in range(nch):
                                        racc[ch] += xv * ws[ci * nch + ch]
                elif direct == 2:
                    b = row // (ho * wo)
                    oy = (row // wo) % ho
                    ox = row % wo
                    ix0 = ox * sw - pl
                    full_row = mult == 1 and kw == 3 and ix0 >= 0 and ix0 + 2 * dwl < win
                    iy0 = oy * sh - pt
                    if full_row and kh == 3 and iy0 >= 0 and iy0 + 2 * dh < hin:
                        # interior 3x3 window: all nine taps in one pass, racc written once
                        # (no zeroing, no read-modify-write per kernel row); any summation
                        # order is exact (integer partial sums < 2**53, the caller's proof)
                        ia, ib, ic = ix0, ix0 + dwl, ix0 + 2 * dwl
                        iy1, iy2 = iy0 + dh, iy0 + 2 * dh
                        x00, x01, x02 = x4[b, iy0, ia], x4[b, iy0, ib], x4[b, iy0, ic]
                        x10, x11, x12 = x4[b, iy1, ia], x4[b, iy1, ib], x4[b, iy1, ic]
                        x20, x21, x22 = x4[b, iy2, ia], x4[b, iy2, ib], x4[b, iy2, ic]
                        w00, w01, w02 = w3[0, 0], w3[0, 1], w3[0, 2]
                        w10, w11, w12 = w3[1, 0], w3[1, 1], w3[1, 2]
                        w20, w21, w22 = w3[2, 0], w3[2, 1], w3[2, 2]
                        for ci in range(cin):
                            racc[ci] = ((x00[ci] * w00[ci] + x01[ci] * w01[ci] + x02[ci] * w02[ci])
                                        + (x10[ci] * w10[ci] + x11[ci] * w11[ci] + x12[ci] * w12[ci])
                                        + (x20[ci] * w20[ci] + x21[ci] * w21[ci] + x22[ci] * w22[ci]))
                        kh_todo = 0
                    else:
                        racc[:] = 0.0
                        kh_todo = kh
                    for ky in range(kh_todo):
                        iy = oy * sh - pt + ky * dh
                        if iy < 0 or iy >= hin:
                            continue
                        if full_row:  # the three taps of a kernel row in one pass over racc
                            xa, xb, xc = x4[b, iy, ix0], x4[b, iy, ix0 + dwl], x4[b, iy, ix0 + 2 * dwl]
                            wa, wb, wc = w3[ky, 0], w3[ky, 1], w3[ky, 2]
                            for ci in range(cin):
                                racc[ci] += (xa[ci] * wa[ci] + xb[ci] * wb[ci]) + xc[ci] * wc[ci]
                            continue
                        for kx in range(kw):
                            ix = ix0 + kx * dwl
                            if ix < 0 or ix >= win:
                                continue
                            xs = x4[b, iy, ix]
                            ws = w3[ky, kx]
                            if mult == 1:
                                for ci in range(cin):
                                    racc[ci] += xs[ci] * ws[ci]
                            else:
                                for ci in range(cin):
                                    for m in range(mult):
                                        racc[ci * mult + m] += xs[ci] * ws[ci * mult + m]
                # 1-D row views indexed from 0: the element loop then vectorizes (flat
                # ``base + ch`` indexing kept it scalar: 4.7 vs 1.4 ns per element)
                src = racc if direct != 0 else acc[base:base + nch]
                dst = out[base:base + nch]
                dpre = pre[base:base + nch] if keep_pre else pre
                for ch in range(nch):
                    v = np.int64(src[ch]) + bias[ch]
                    mn_a = min(mn_a, v)
                    mx_a = max(mx_a, v)
                    ev_a += (v < acc_lo) | (v > acc_hi)
                    r = _rshift(_acc_step(v, acc_mode, acc_lo, acc_hi, acc_mask), s1, b1, n1, p1)
                    mn_1 = min(mn_1, r)
                    mx_1 = max(mx_1, r)
                    ev_1 += (r < lo1) | (r > hi1)
                    r = _fit(r, lo1, hi1, sat1, mask1)
                    if relu:
                        if keep_pre:
                            dpre[ch] = r
                        y = _rshift(min(max(r, 0), cap_in), s2, b2, n2, p2)  # y >= 0
                        mx_2 = max(mx_2, y)
                        ev_2 += (y < lo2) | (y > hi2)
                        dst[ch] = min(_fit(y, lo2, hi2, sat2, mask2), cap_out)
                    else:
                        dst[ch] = r
            stats[c, 0] = ev_a
            stats[c, 1] = max(abs(mn_a), abs(mx_a))
            stats[c, 2] = ev_1
            stats[c, 3] = max(abs(mn_1), abs(mx_1))
            stats[c, 4] = ev_2
            stats[c, 5] = mx_2

    return tail


# (relu, keep_pre, direct) -> compiled loop; keep_pre only matters with relu
_TAILS = {(relu, keep, direct): _make_tail(relu, keep, direct)
          for relu in (False, True) for keep in ((False, True) if relu else (False,)) for direct in (0, 1, 2, 3)}
_NONE2D = np.zeros((1, 1), dtype=np.float64)
_NONE3D = np.zeros((1, 1, 1), dtype=np.float64)
_NONE4D = np.zeros((1, 1, 1, 1), dtype=np.float64)
_NO_GEOM = (0, 0, 0, 0, 1, 1, 1, 1, 1)


def _mask(bits: int) -> int:
    return -1 if bits >= 64 else (1 << bits) - 1


@dataclass(frozen=True)
class AccumulatorSpec:
    """The accumulator model of the tail: ``mode`` 0 none (already narrowed), 1 saturate,
    2 wrap, on a signed ``bits``-bit word."""

    mode: int
    bits: int

    @classmethod
    def of(cls, acc_bits: int, overflow: Overflow | None) -> "AccumulatorSpec":
        return cls(0 if overflow is None else (1 if overflow is Overflow.SATURATE else 2), acc_bits)

    @property
    def lo(self) -> int:
        return -(2**63) if self.mode == 0 else -(1 << (self.bits - 1))

    @property
    def hi(self) -> int:
        return 2**63 - 1 if self.mode == 0 else (1 << (self.bits - 1)) - 1

    def packed(self) -> tuple:
        """(mode, lo, hi, mask) as int64, the order the compiled loop unpacks."""
        return tuple(np.int64(v) for v in (self.mode, self.lo, self.hi, _mask(self.bits)))


@dataclass(frozen=True)
class RequantSpec:
    """One rounding right shift by ``shift`` bits into ``fmt`` with its rounding and overflow."""

    shift: int
    fmt: QFormat
    rounding: Rounding
    overflow: Overflow

    def packed(self) -> tuple:
        """(shift, base, negative, parity, lo, hi, saturate, mask) as int64 (`rounding_offsets`)."""
        base, neg, par = rounding_offsets(self.shift, self.rounding)
        return tuple(np.int64(v) for v in (self.shift, base, neg, par, self.fmt.min_code, self.fmt.max_code,
                                           int(self.overflow is Overflow.SATURATE), _mask(self.fmt.word_bits)))


def code_dtype(fmt: QFormat):
    """float64 for words up to 53 bits (exact, BLAS-ready), else int64."""
    return np.float64 if fmt.word_bits <= 53 else np.int64


def fused_tail(acc: np.ndarray | None, bias_acc: np.ndarray | None, *, acc_bits: int,
               acc_overflow: Overflow | None, acc_frac: int, out_fmt: QFormat, rounding: Rounding,
               overflow: Overflow, relu: "ReluSpec | None" = None, counters: dict[str, OverflowCounter] | None = None,
               keep_pre: bool = False, direct: tuple | None = None):
    """Run the fused tail on the exact sums `acc` (..., C). Returns (codes, pre-ReLU codes or None).

    Args:
        acc_overflow: None means no accumulator model (the sum is already narrowed).
        relu: None, or a `qsim.kernels.eltwise.ReluSpec`.
        keep_pre: also return the requantized codes before the fused ReLU.
        direct: instead of `acc`, ``("pointwise", x2d, w, shape)`` (float64 (rows, K) codes and
            (K, C) weights), ``("depthwise" | "conv", x4, w3, shape, geom)`` (see `_make_tail`): the
            sums are computed in the pass (exact below 2**53, proved by the caller); or
            ``("gemm", cols, w, shape)``: the sums are ``cols @ w`` by BLAS (float64, or float32
            below 2**24, proved by the caller), one cache-sized block of rows before its tail.
    """
    x2d, x4, wmat, w3, geom, mode = _NONE2D, _NONE4D, _NONE2D, _NONE3D, _NO_GEOM, 0
    cols = None
    if direct is not None and direct[0] == "pointwise":
        _, x2d, wmat, shape = direct
        nrows, nch, mode = x2d.shape[0], wmat.shape[1], 1
    elif direct is not None and direct[0] == "gemm":
        _, cols, gemm_w, shape = direct
        nrows, nch = cols.shape[0], gemm_w.shape[1]
    elif direct is not None:
        kind, x4, w3, shape, geom = direct
        nrows, nch, mode = shape[0] * shape[1] * shape[2], shape[3], (2 if kind == "depthwise" else 3)
    else:
        shape = acc.shape
        nch = shape[-1] if len(shape) else 1
        nrows = acc.size // max(nch, 1)
    size = nrows * nch
    if size == 0:
        empty = np.zeros(shape, code_dtype(out_fmt if relu is None else relu.fmt))
        return empty, (np.zeros(shape, code_dtype(out_fmt)) if keep_pre and relu is not None else None)
    bias = np.zeros(nch, np.int64) if bias_acc is None else np.ascontiguousarray(bias_acc, dtype=np.int64)
    acc_spec = AccumulatorSpec.of(acc_bits, acc_overflow)
    requant = RequantSpec(acc_frac - out_fmt.frac_bits, out_fmt, rounding, overflow)
    final_fmt = out_fmt if relu is None else relu.fmt
    out = workspace.empty(size, code_dtype(final_fmt))  # recycled: no page faults (see workspace)
    keep = relu is not None and keep_pre
    pre = workspace.empty(size if keep else 0, code_dtype(out_fmt))
    r = relu or ReluSpec(out_fmt, None, 0, 0, rounding, overflow)
    act_fmt = r.fmt
    act = RequantSpec(out_fmt.frac_bits - act_fmt.frac_bits, act_fmt, r.rounding, r.overflow).packed() + (
        np.int64(r.cap_in), np.int64(r.cap_out))
    loop = _TAILS[(relu is not None, keep, mode)]
    specs = (tuple(int(g) for g in geom), bias, nch, acc_spec.packed(), requant.packed(), act)

    def run(flat, rows, dst, dpre):
        nchunk = int(min(64, max(1, rows * nch // 32768), max(1, rows)))
        stats = np.zeros((nchunk, 6), dtype=np.int64)
        loop(flat, x2d, x4, wmat, w3, *specs, dst, dpre, nchunk, stats)
        return stats

    if cols is None:
        stats = run(_NONE2D.reshape(-1) if direct is not None else acc.reshape(-1), nrows, out, pre)
    else:
        # BLAS sums one block of rows at a time into a buffer that stays in cache, each block's
        # tail right after it: the sums never make a round trip through memory (16 bytes per
        # output less). Exact in any blocking: integer partial sums below 2**53 (or 2**24 in
        # float32), the caller's proof; the counters add up over blocks as over chunks.
        block = blas.ROWS_PER_BLOCK * blas.get_threads()
        buf = workspace.empty((min(block, nrows), nch), np.float64)
        parts = []
        for lo in range(0, nrows, block):
            hi = min(nrows, lo + block)
            sums = blas.gemm(cols[lo:hi], gemm_w, out=None if cols.dtype == np.float32 else buf[:hi - lo])
            if sums.dtype != np.float64:  # float32 sums (exact integers < 2**24): widened in cache
                np.copyto(buf[:hi - lo], sums)
                sums = buf[:hi - lo]
            parts.append(run(sums.reshape(-1), hi - lo, out[lo * nch:hi * nch], pre[lo * nch:hi * nch] if keep else pre))
        stats = np.concatenate(parts)
    if counters:
        if acc_spec.mode and counters.get("acc") is not None:
            counters["acc"].record(events=int(stats[:, 0].sum()), elements=size, peak=int(stats[:, 1].max()),
                                   lo=acc_spec.lo, hi=acc_spec.hi)
        if counters.get("requant") is not None:
            counters["requant"].record(events=int(stats[:, 2].sum()), elements=size, peak=int(stats[:, 3].max()),
                                       lo=out_fmt.min_code, hi=out_fmt.max_code)
        if relu is not None and counters.get("act") is not None:
            counters["act"].record(events=int(stats[:, 4].sum()), elements=size, peak=int(stats[:, 5].max()),
                                   lo=act_fmt.min_code, hi=act_fmt.max_code)
    post = out.reshape(shape)
    return post, (pre.reshape(shape) if keep else None)
