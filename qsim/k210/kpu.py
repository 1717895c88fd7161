"""One KPU layer, bit-exact: conv -> per-channel "batchnorm" -> 16-segment activation -> pool.

Integer contract (``k210-kpu.md`` §1.5-§1.9; all arithmetic exact in int64):

* Input X and weights W are uint8, (C, H, W) channel-major; the conv is always stride 1
  and "same": a 3x3 kernel reads a 1-pixel border filled with ``pad_value`` (uint8).
* Stage A (conv, per output channel o, pixel (y, x) of the input grid)::

      A = sum(X*W) + floor(arg_x*SX / 2**shr_x) + floor(arg_w*SW / 2**shr_w) + arg_add*G

  SX = sum of the window's input bytes (pads included), SW = sum of channel o's weights,
  G = IC (normal conv) or 1 (depthwise). arg_x/arg_w int24, shr uint4, arg_add int40.
* Stage B (BN): ``B = floor(A*norm_mul[o] / 2**norm_shift[o]) + norm_add[o]``; no rounding.
* Overflow sites: the hardware ALU holds A and B in **36-bit** signed words
  (``KPU_BN_OUT_BITS``); every value outside [-2**35, 2**35 - 1] is counted (sites
  ``"acc"`` and ``"bn"``). What silicon does then is unknown: `KpuSwitches.alu_overflow`
  chooses ``"exact"`` (keep the int64 value, as the vendor emulator does; default) or
  ``"wrap"`` (keep the low 36 bits).
* Stage C (activation): segment i = the highest index with ``B > x_start[i]`` (switch
  ``segment_compare="inclusive"``: ``B >= x_start[i]``; if no segment matches, segment 0);
  ``T = (B - x_start[i])*y_mul[i]``, ``R = T / 2**shift[i]`` rounded by
  ``act_rounding`` (the one rounding site of the layer), ``Z = clamp(R + bias[i], 0, 255)``
  (the one saturation site, counted as ``"act"``).

  ``act_rounding``: ``"nncase"`` (default; nncase's ``carry_shift<Banker>`` as implemented:
  I = floor(T/2**s), F = T mod 2**s, h = 2**(s-1): F < h -> I, F > h -> I + sgn(T),
  F = h -> I + sgn(T) if I is odd else I; half-even for T >= 0, not a correct rounding for
  T < 0), ``"half_even"`` (correct ties-to-even), ``"half_up"`` ((T + h) >> s).
* Stage D (pool, on the uint8 map): `POOL_TYPES`; output = floor(in/stride). Max pools
  treat out-of-range taps as 0, mean pools replicate the edge and divide by K**2 with
  ``mean_rounding`` (``"floor"`` default, as the emulator; or ``"half_up"``); select pools
  read 0 outside the map.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from qsim.errors import InputError, KmodelError
from qsim.k210.fields import ActTable, BatchNorm, LayerArgs

ALU_BITS = 36
ALU_MIN = -(1 << (ALU_BITS - 1))
ALU_MAX = (1 << (ALU_BITS - 1)) - 1

# pool_type -> (name, window, stride)
POOL_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("bypass", 1, 1),
    1: ("max_2_s2", 2, 2),
    2: ("mean_2_s2", 2, 2),
    3: ("max_4_s4", 4, 4),
    4: ("mean_4_s4", 4, 4),
    5: ("left_top_2_s2", 2, 2),
    6: ("right_top_2_s2", 2, 2),
    7: ("left_top_4_s4", 4, 4),
    8: ("mean_2_s1", 2, 1),
    9: ("max_2_s1", 2, 1),
}
_POOL_KIND = {0: 0, 1: 1, 3: 1, 9: 1, 2: 2, 4: 2, 8: 2, 5: 3, 6: 3, 7: 3}  # bypass/max/mean/select
_SELECT_OFFSET = {5: (0, 0), 6: (0, 1), 7: (0, 0)}

SEGMENT_COMPARES = ("strict", "inclusive")
ACT_ROUNDINGS = ("nncase", "half_even", "half_up")
MEAN_ROUNDINGS = ("floor", "half_up")
ALU_OVERFLOWS = ("exact", "wrap")


@dataclass(frozen=True)
class KpuSwitches:
    """The spec's open points, each with the vendor emulator's behaviour as default."""

    segment_compare: str = "strict"
    act_rounding: str = "nncase"
    mean_rounding: str = "floor"
    alu_overflow: str = "exact"

    def __post_init__(self) -> None:
        for name, allowed in (("segment_compare", SEGMENT_COMPARES), ("act_rounding", ACT_ROUNDINGS),
                              ("mean_rounding", MEAN_ROUNDINGS), ("alu_overflow", ALU_OVERFLOWS)):
            if getattr(self, name) not in allowed:
                raise InputError(f"KPU switch {name}={getattr(self, name)!r}; choose from {', '.join(allowed)}")


def pool_output_size(size: int, pool_type: int) -> int:
    """Output length of one axis after `pool_type` (floor(in / stride))."""
    if pool_type not in POOL_TYPES:
        raise KmodelError(f"unknown KPU pool_type {pool_type} (known: 0..9)")
    return size // POOL_TYPES[pool_type][2]


# ---------------------------------------------------------------- stage B: batchnorm
@njit(cache=True)
def _bn_stage(a, mul, shift, add):
    oc, h, wd = a.shape
    out = np.empty_like(a)
    for o in range(oc):
        m = mul[o]
        s = shift[o]
        b = add[o]
        for y in range(h):
            for xx in range(wd):
                out[o, y, xx] = ((a[o, y, xx] * m) >> s) + b
    return out


@njit(cache=True, inline="always")
def _wrap_alu(v):
    """One value kept to the 36-bit ALU word (two's-complement wrap)."""
    v = v & ((np.int64(1) << 36) - 1)
    return v - ((v >= (np.int64(1) << 35)) * (np.int64(1) << 36))


@njit(cache=True)
def _wrap36(a):
    out = np.empty_like(a)
    flat_in = a.ravel()
    flat = out.ravel()
    for i in range(flat_in.size):
        flat[i] = _wrap_alu(flat_in[i])
    return out


# ---------------------------------------------------------------- stage C: activation
@njit(cache=True, inline="always")
def _round_shift(t, s, mode):
    """t / 2**s rounded: mode 0 nncase banker-as-implemented, 1 half_even, 2 half_up.

    Written without branches on the data, so the fused layer loop vectorizes:
    I = floor(t / 2**s), F = t mod 2**s, h = 2**(s-1); "up" when F > h, or F = h and I is odd;
    nncase moves I one step in the direction of t's sign, half_even one step up."""
    if mode == 2:
        return (t + ((np.int64(1) << s) >> 1)) >> s
    integral = t >> s
    frac = t & ((np.int64(1) << s) - 1)
    half = (np.int64(1) << s) >> 1  # 0 when s == 0: nothing to round
    up = (s > 0) & ((frac > half) | ((frac == half) & ((integral & 1) == 1)))
    if mode == 0:
        return integral + up * (1 - 2 * (t < 0))
    return integral + up


@njit(cache=True, inline="always")
def _activation(b, x_start, y_mul, shift, bias, inclusive, mode):
    """Stage C of one value before the clamp: the highest segment i with b > x_start[i]
    (>= when `inclusive`; segment 0 when none matches), by selects rather than a search
    with a break (the same segment, and the loop vectorizes), then the rounded shift."""
    xs, ym, ts, tb = x_start[0], y_mul[0], shift[0], bias[0]
    for j in range(1, 16):
        hit = (b >= x_start[j]) if inclusive else (b > x_start[j])
        xs = x_start[j] if hit else xs
        ym = y_mul[j] if hit else ym
        ts = shift[j] if hit else ts
        tb = bias[j] if hit else tb
    return _round_shift((b - xs) * ym, ts, mode) + tb


@njit(cache=True)
def _act_stage(b, x_start, y_mul, shift, bias, inclusive, mode):
    flat = b.ravel()
    out = np.empty(flat.size, np.uint8)
    pre = np.empty(flat.size, np.int64)
    for i in range(flat.size):
        r = _activation(flat[i], x_start, y_mul, shift, bias, inclusive, mode)
        pre[i] = r
        out[i] = min(max(r, 0), 255)
    return out.reshape(b.shape), pre.reshape(b.shape)


# ---------------------------------------------------------------- stage D: pooling
@njit(cache=True)
def _pool_stage(z, kind, win, stride, off_y, off_x, mean_half_up):
    c, h, wd = z.shape
    oh = h // stride
    ow = wd // stride
    out = np.empty((c, oh, ow), np.uint8)
    for ch in range(c):
        for oy in range(oh):
            for ox in range(ow):
                y0 = oy * stride
                x0 = ox * stride
                if kind == 0:
                    out[ch, oy, ox] = z[ch, y0, x0]
                elif kind == 1:
                    m = 0
                    for ky in range(win):
                        for kx in range(win):
                            yy = y0 + ky
                            xx = x0 + kx
                            if yy < h and xx < wd and z[ch, yy, xx] > m:
                                m = z[ch, yy, xx]
                    out[ch, oy, ox] = m
                elif kind == 2:
                    s = 0
                    for ky in range(win):
                        for kx in range(win):
                            yy = min(y0 + ky, h - 1)
                            xx = min(x0 + kx, wd - 1)
                            s += z[ch, yy, xx]
                    d = win * win
                    out[ch, oy, ox] = (s + d // 2) // d if mean_half_up else s // d
                else:
                    yy = y0 + off_y
                    xx = x0 + off_x
                    out[ch, oy, ox] = z[ch, yy, xx] if (yy < h and xx < wd) else 0
    return out


# ---------------------------------------------------------------- stage A, and the stages fused
# Stage A's sums of products come from an exact float64 GEMM (uint8 x uint8 sums stay below
# 255 * 255 * K < 2**53 for any K) or per-channel depthwise sums in parallel (`_stage_a_terms`,
# used by `conv_stage` and by the fused pass). The fused pass then runs the corrections, BN,
# the activation and the three counters in one loop over the layer: the same integers as the
# stages one after another (tests/k210/test_kpu.py compares codes and counters).
@njit(cache=True, parallel=True)
def _padded_cols(x, k, pad_value):
    """(C*K*K, H*W) float64 patches of the (C, H, W) uint8 map, pads = pad_value; row order
    (c, ky, kx) as the (OC, C, K, K) weights flatten, columns the pixels (channel-major)."""
    c_in, h, wd = x.shape
    p = (k - 1) // 2
    cols = np.empty((c_in * k * k, h * wd), np.float64)
    for r in prange(c_in * k * k):
        c = r // (k * k)
        ky = (r // k) % k
        kx = r % k
        row = cols[r]
        for y in range(h):
            iy = y + ky - p
            base = y * wd
            if iy < 0 or iy >= h:
                row[base:base + wd] = pad_value
                continue
            for xx in range(wd):
                ix = xx + kx - p
                row[base + xx] = x[c, iy, ix] if 0 <= ix < wd else pad_value
    return cols


@njit(cache=True, parallel=True)
def _depthwise_sums(x, w, k, pad_value):
    """(C, H*W) int64 window sums of products and of inputs (pads = pad_value), per channel."""
    c_in, h, wd = x.shape
    p = (k - 1) // 2
    sums = np.zeros((c_in, h * wd), np.int64)
    sx = np.zeros((c_in, h * wd), np.int64)
    for o in prange(c_in):
        xp = np.full((h + 2 * p, wd + 2 * p), pad_value, np.int64)  # this channel, padded
        for y in range(h):
            for xx in range(wd):
                xp[y + p, xx + p] = x[o, y, xx]
        acc = sums[o]
        s = sx[o]
        for ky in range(k):
            for kx in range(k):
                wv = np.int64(w[o, 0, ky, kx])
                for y in range(h):
                    src = xp[y + ky, kx:kx + wd]
                    base = y * wd
                    for xx in range(wd):
                        acc[base + xx] += src[xx] * wv
                        s[base + xx] += src[xx]
    return sums, sx


def _stage_a_terms(x, weights, depthwise: bool, pad_value: int, arg_w: int, shr_w: int, arg_add: int):
    """Stage A of uint8 `x` (C, H, W) without its input correction, in parts: (sums of products
    (OC, H*W), window input sums SX (OC or 1, H*W) int64, the weight correction per output
    channel, the add term). A = sums + floor(arg_x * SX / 2**shr_x) + corr_w + add_term."""
    c_in = x.shape[0]
    oc, k = weights.shape[0], weights.shape[-1]
    corr_w = (np.int64(arg_w) * weights.reshape(oc, -1).astype(np.int64).sum(axis=1)) >> np.int64(shr_w)
    if depthwise:
        sums, sx = _depthwise_sums(x, weights, k, np.int64(pad_value))
        return sums, sx, corr_w, np.int64(arg_add)
    cols = x.reshape(c_in, -1).astype(np.float64) if k == 1 else _padded_cols(x, k, np.int64(pad_value))
    sums = weights.reshape(oc, -1).astype(np.float64) @ cols  # exact: integer sums < 255 * 255 * K < 2**53
    sx = cols.sum(axis=0).astype(np.int64).reshape(1, -1)  # exact integers below 2**53 too
    return sums, sx, corr_w, np.int64(arg_add) * c_in


def _make_fused_tail(inclusive: bool, mode: int, wrap: bool):
    """Compile stage A's corrections, B and C for one switch setting; the switches are
    compile-time constants (a run-time branch on them kept LLVM from vectorizing the
    activation loop: 15-20 ns per element instead of ~5).

    The loop: ``fused(sums, sx, sx_per_channel, arg_x, shr_x, corr_w, add_term, mul, shift,
    add, x_start, y_mul, act_shift, act_bias, z, stats)`` on (OC, HW) sums; z (OC, HW)
    uint8; stats[o] = min/max/events of A, B, R (HW > 0). `sx` holds the window input sums, (OC, HW)
    when `sx_per_channel` (depthwise), else (1, HW).
    """

    @njit(cache=True, parallel=True)
    def fused(sums, sx, sx_per_channel, arg_x, shr_x, corr_w, add_term, mul, shift, add,
              x_start, y_mul, act_shift, act_bias, z, stats):
        oc, hw = z.shape
        lo, hi = np.int64(-(1 << 35)), np.int64((1 << 35) - 1)
        big = np.int64(1) << 62
        for o in prange(oc):
            srow = sums[o]
            xrow = sx[o] if sx_per_channel else sx[0]
            zrow = z[o]
            base = corr_w[o] + add_term
            m, sh, ad = mul[o], shift[o], add[o]
            amin = bmin = rmin = big
            amax = bmax = rmax = -big
            aev = bev = rev = 0
            for i in range(hw):
                a = np.int64(srow[i]) + ((arg_x * xrow[i]) >> shr_x) + base  # stage A
                amin = min(amin, a)
                amax = max(amax, a)
                aev += (a < lo) | (a > hi)
                if wrap:
                    a = _wrap_alu(a)
                b = ((a * m) >> sh) + ad  # stage B
                bmin = min(bmin, b)
                bmax = max(bmax, b)
                bev += (b < lo) | (b > hi)
                bw = _wrap_alu(b) if wrap else b
                r = _activation(bw, x_start, y_mul, act_shift, act_bias, inclusive, mode)  # stage C
                rmin = min(rmin, r)
                rmax = max(rmax, r)
                rev += (r < 0) | (r > 255)
                zrow[i] = min(max(r, 0), 255)
            stats[o, 0] = amin
            stats[o, 1] = amax
            stats[o, 2] = aev
            stats[o, 3] = bmin
            stats[o, 4] = bmax
            stats[o, 5] = bev
            stats[o, 6] = rmin
            stats[o, 7] = rmax
            stats[o, 8] = rev

    return fused


# (inclusive, act rounding index, wrap) -> compiled loop, made on first use
_FUSED_TAILS: dict = {}


def _fused_tail(switches: KpuSwitches):
    key = (switches.segment_compare == "inclusive", ACT_ROUNDINGS.index(switches.act_rounding),
           switches.alu_overflow == "wrap")
    loop = _FUSED_TAILS.get(key)
    if loop is None:
        loop = _FUSED_TAILS[key] = _make_fused_tail(*key)
    return loop


# ---------------------------------------------------------------- public API
def conv_stage(x: np.ndarray, weights: np.ndarray, *, depthwise: bool, pad_value: int,
               arg_x: int, shr_x: int, arg_w: int, shr_w: int, arg_add: int) -> np.ndarray:
    """Stage A: int64 (OC, H, W) conv results of uint8 `x` (C, H, W) and `weights` (OC, C|1, K, K)."""
    x = np.ascontiguousarray(x, dtype=np.uint8)
    weights = np.ascontiguousarray(weights, dtype=np.uint8)
    k = weights.shape[-1]
    if x.ndim != 3 or weights.ndim != 4 or k not in (1, 3) or weights.shape[2] != k:
        raise InputError(f"KPU conv needs x (C,H,W) and weights (OC,C,K,K) with K in (1,3); "
                         f"got {x.shape} and {weights.shape}")
    if depthwise and (weights.shape[1] != 1 or weights.shape[0] != x.shape[0]):
        raise InputError(f"depthwise KPU conv needs weights ({x.shape[0]},1,K,K), got {weights.shape}")
    if not depthwise and weights.shape[1] != x.shape[0]:
        raise InputError(f"KPU conv weights {weights.shape} do not match {x.shape[0]} input channels")
    sums, sx, corr_w, add_term = _stage_a_terms(x, weights, bool(depthwise), pad_value, arg_w, shr_w, arg_add)
    a = sums.astype(np.int64) + ((np.int64(arg_x) * sx) >> np.int64(shr_x)) + corr_w[:, None] + add_term
    return a.reshape((weights.shape[0],) + x.shape[1:])


def bn_stage(a: np.ndarray, bn: BatchNorm) -> np.ndarray:
    """Stage B: B = floor(A*mul / 2**shift) + add per output channel (int64)."""
    return _bn_stage(np.ascontiguousarray(a, dtype=np.int64), bn.mul.astype(np.int64),
                     bn.shift.astype(np.int64), bn.add.astype(np.int64))


def act_stage(b: np.ndarray, table: ActTable, switches: KpuSwitches = KpuSwitches()) -> tuple[np.ndarray, np.ndarray]:
    """Stage C: the uint8 activation output and the int64 values before the clamp to [0, 255]."""
    return _act_stage(np.ascontiguousarray(b, dtype=np.int64), table.x_start.astype(np.int64),
                      table.y_mul.astype(np.int64), table.shift.astype(np.int64),
                      table.bias.astype(np.int64), switches.segment_compare == "inclusive",
                      ACT_ROUNDINGS.index(switches.act_rounding))


def pool_stage(z: np.ndarray, pool_type: int, switches: KpuSwitches = KpuSwitches()) -> np.ndarray:
    """Stage D: the pooled/subsampled uint8 map (C, floor(H/s), floor(W/s))."""
    if pool_type not in POOL_TYPES:
        raise KmodelError(f"unknown KPU pool_type {pool_type} (known: 0..9)")
    _, win, stride = POOL_TYPES[pool_type]
    off_y, off_x = _SELECT_OFFSET.get(pool_type, (0, 0))
    return _pool_stage(np.ascontiguousarray(z, dtype=np.uint8), _POOL_KIND[pool_type], win, stride,
                       off_y, off_x, switches.mean_rounding == "half_up")


def _new_counter(site: str):
    from qsim.fixed.counters import OverflowCounter

    return OverflowCounter(site)


@dataclass
class KpuLayer:
    """Everything one KPU layer computes with: decoded registers, BN, activation table, weights."""

    args: LayerArgs
    bn: BatchNorm
    act: ActTable
    weights: np.ndarray  # uint8 (OC, IC|1, K, K)
    name: str = "kpu"

    @classmethod
    def from_registers(cls, args: LayerArgs, bn: BatchNorm, act: ActTable, weights_flat: np.ndarray,
                       name: str = "kpu") -> "KpuLayer":
        k = args.kernel_size
        oc, ic = args.out_channels, (1 if args.depthwise else args.in_channels)
        if args.depthwise and args.in_channels != args.out_channels:
            raise KmodelError(f"{name}: depthwise layer with {args.in_channels} input and "
                              f"{args.out_channels} output channels")
        if weights_flat.size != oc * ic * k * k:
            raise KmodelError(f"{name}: {weights_flat.size} weight bytes, expected {oc * ic * k * k}")
        if bn.mul.size != oc:
            raise KmodelError(f"{name}: {bn.mul.size} BN entries for {oc} output channels")
        if args.pool_type not in POOL_TYPES:
            raise KmodelError(f"{name}: unknown pool_type {args.pool_type} (known: 0..9)")
        h, w = args.in_hw
        oh, ow = args.out_hw
        if (pool_output_size(h, args.pool_type), pool_output_size(w, args.pool_type)) != (oh, ow):
            raise KmodelError(f"{name}: output {oh}x{ow} does not follow from input {h}x{w} and "
                              f"pool {POOL_TYPES[args.pool_type][0]}")
        return cls(args, bn, act, np.asarray(weights_flat, np.uint8).reshape(oc, ic, k, k), name)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return (self.args.in_channels, *self.args.in_hw)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.args.out_channels, *self.args.out_hw)

    def macs(self) -> int:
        h, w = self.args.in_hw
        return int(self.weights.size) * h * w

    def run(self, x: np.ndarray, switches: KpuSwitches = KpuSwitches(),
            counters: dict | None = None, keep: dict | None = None) -> np.ndarray:
        """The layer's uint8 output (OC, OH, OW) for uint8 input `x` (IC, H, W).

        `counters` (optional dict) receives ``OverflowCounter`` objects for the sites
        ``"acc"``, ``"bn"`` (36-bit ALU) and ``"act"`` (uint8 clamp). `keep` (optional dict)
        receives the intermediate stages ``"A"``, ``"B"``, ``"Z"`` (before pooling).
        """
        if tuple(x.shape) != self.in_shape:
            raise InputError(f"{self.name}: input shape {tuple(x.shape)}, the layer expects {self.in_shape}")
        a = self.args
        if keep is None:  # nobody reads the stages: one fused pass (same codes and counters)
            return pool_stage(self._fused(np.ascontiguousarray(x, dtype=np.uint8), switches, counters),
                              a.pool_type, switches)
        acc = conv_stage(x, self.weights, depthwise=a.depthwise, pad_value=a.pad_value, arg_x=a.arg_x,
                         shr_x=a.shr_x, arg_w=a.arg_w, shr_w=a.shr_w, arg_add=a.arg_add)
        if counters is not None:
            counters.setdefault("acc", _new_counter("acc")).observe(acc, ALU_MIN, ALU_MAX)
        if switches.alu_overflow == "wrap":
            acc = _wrap36(acc)
        bnv = bn_stage(acc, self.bn)
        if counters is not None:
            counters.setdefault("bn", _new_counter("bn")).observe(bnv, ALU_MIN, ALU_MAX)
        if switches.alu_overflow == "wrap":
            bnv = _wrap36(bnv)
        z, pre = act_stage(bnv, self.act, switches)
        if counters is not None:
            # the activation's clamp is the layer's one saturation site
            counters.setdefault("act", _new_counter("act")).observe(pre, 0, 255)
        if keep is not None:
            keep.update(A=acc, B=bnv, Z=z)
        return pool_stage(z, a.pool_type, switches)

    def _fused(self, x: np.ndarray, switches: KpuSwitches, counters: dict | None) -> np.ndarray:
        """Stages A-C in one pass (`_fused_tail`): the uint8 map before pooling, counters fed."""
        a = self.args
        _, h, wd = x.shape
        oc = self.weights.shape[0]
        sums, sx, corr_w, add_term = _stage_a_terms(x, self.weights, a.depthwise, a.pad_value, a.arg_w, a.shr_w,
                                                    a.arg_add)
        z = np.empty((oc, h * wd), np.uint8)
        stats = np.zeros((oc, 9), np.int64)
        t = self.act
        _fused_tail(switches)(sums, sx, a.depthwise, np.int64(a.arg_x), np.int64(a.shr_x), corr_w, add_term,
                              self.bn.mul.astype(np.int64), self.bn.shift.astype(np.int64),
                              self.bn.add.astype(np.int64), t.x_start.astype(np.int64), t.y_mul.astype(np.int64),
                              t.shift.astype(np.int64), t.bias.astype(np.int64), z, stats)
        if counters is not None:
            for site, col, lo, hi in (("acc", 0, ALU_MIN, ALU_MAX), ("bn", 3, ALU_MIN, ALU_MAX), ("act", 6, 0, 255)):
                counter = counters.setdefault(site, _new_counter(site))
                if z.size:  # then every channel saw H*W > 0 values
                    peak = max(abs(int(stats[:, col].min())), abs(int(stats[:, col + 1].max())))
                    counter.record(events=int(stats[:, col + 2].sum()), elements=z.size, peak=peak, lo=lo, hi=hi)
        return z.reshape(oc, h, wd)
