"""Vectorised integer kernels of TFLite's reference resolver (BUILTIN_REF), int8 and uint8.

Every kernel works on int64 NumPy arrays holding the stored codes (NHWC layout) and
returns exact int64 results; narrowing (accumulator width, requantization, clamps) is
done by the caller (`qsim.tflite.executor`) so each overflow site can be counted.
Sections below follow ../shared/tflite-int8.md; each kernel's docstring is its contract.
Python-int twins of every kernel are in `qsim.tflite.ref`.

Exactness: MAC kernels multiply (x - zp) in [-255, 255] by weights in [-255, 255] and
sum K terms in float64 BLAS, which is exact while K * 255^2 < 2^53 (K < 1.3e11; checked
by `_check_exact_fanin`); everything else is int64.
"""
from __future__ import annotations

import numpy as np

from qsim.tflite.arith import (
    INT32_MAX,
    INT32_MIN,
    c_div,
    multiply_by_quantized_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_multiply_by_pot,
    srdhm,
)

_EXACT_F64 = 2**53


def _check_exact_fanin(k: int, amax: int, bmax: int) -> None:
    if k * amax * bmax >= _EXACT_F64:
        raise ValueError(f"fan-in {k} too large for an exact float64 accumulation")


def same_padding(in_size: int, k: int, stride: int, dilation: int) -> tuple[int, int, int]:
    """TFLite SAME padding: (out, pad_before, pad_after); the extra cell goes after."""
    out = -(-in_size // stride)
    eff_k = (k - 1) * dilation + 1
    total = max((out - 1) * stride + eff_k - in_size, 0)
    return out, total // 2, total - total // 2


def valid_out(in_size: int, k: int, stride: int, dilation: int) -> int:
    eff_k = (k - 1) * dilation + 1
    return (in_size - eff_k + stride) // stride


def _windows(xp: np.ndarray, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, oh: int, ow: int):
    """Yield (ky, kx, view) with view[n, oy, ox, c] = xp[n, oy*sh + ky*dh, ox*sw + kx*dw, c]."""
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            yield ky, kx, xp[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :]


def conv2d_acc(x, in_zp, w, w_zp, bias, stride, dilation, pads, out_hw) -> np.ndarray:
    """CONV_2D accumulator: acc[n,oy,ox,oc] = bias[oc] + sum (w - w_zp) * (x - in_zp).

    x: [N,H,W,IC] codes; w: [OC,KH,KW,FIC] codes with FIC = IC / groups; w_zp scalar
    (0 for int8 symmetric weights); bias: [OC] int32 or None; pads = (top, left): taps
    outside the image are skipped, which equals padding x - in_zp with 0. Returns the
    exact sum (int64), before any accumulator narrowing.
    """
    out = conv2d_sums(x, in_zp, w, w_zp, stride, dilation, pads, out_hw, np.float64).astype(np.int64)
    if bias is not None:
        out += np.asarray(bias, np.int64)
    return out


def sum_bound(w, w_zp, x_absmax: int, axis_oc: int = 0) -> np.ndarray:
    """Per output channel, sum_k |w - w_zp| * max|x - zp| (int64): no partial sum of that
    channel's products, in any order, is larger in magnitude."""
    wz = np.abs(np.asarray(w, np.int64) - np.asarray(w_zp, np.int64))
    return np.moveaxis(wz, axis_oc, 0).reshape(wz.shape[axis_oc], -1).sum(axis=1) * int(x_absmax)


def exact_float_dtype(w, w_zp, x_absmax: int, axis_oc: int = 0):
    """float32 if every partial sum of (w - w_zp)(x - zp) is provably below 2^24, else float64.

    Bound per output channel: `sum_bound`; every intermediate of any summation order is an
    integer no larger, hence exact in the chosen float type.
    """
    bound = int(sum_bound(w, w_zp, x_absmax, axis_oc).max(initial=0))
    if bound < 2**24:
        return np.float32
    _check_exact_fanin(1, bound, 1)
    return np.float64


def conv2d_sums(x, in_zp, w, w_zp, stride, dilation, pads, out_hw, dtype) -> np.ndarray:
    """sum (w - w_zp)(x - in_zp) over the taps inside the image, without bias, as `dtype`
    (float32 / float64, exact: see `exact_float_dtype`); [N, OH, OW, OC]."""
    x = np.asarray(x)
    w = np.asarray(w, np.int64) - np.asarray(w_zp, np.int64)
    n, h, wd, ic = x.shape
    oc, kh, kw, fic = w.shape
    sh, sw = stride
    dh, dw = dilation
    oh, ow = out_hw
    groups = ic // fic
    ph, pw = pads
    _check_exact_fanin(kh * kw * fic, 255, 255)
    wf = w.astype(dtype)
    if kh == kw == 1 and groups == 1 and pads == (0, 0):
        # pointwise: no window gather, one GEMM on the strided view
        xs = x[:, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, :].astype(dtype) - dtype(in_zp)
        return (xs.reshape(-1, ic) @ wf.reshape(oc, ic).T).reshape(n, oh, ow, oc)
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    xp = np.zeros((n, max(need_h, h + ph), max(need_w, wd + pw), ic), dtype)
    xp[:, ph:ph + h, pw:pw + wd, :] = x.astype(dtype) - dtype(in_zp)
    xp = xp[:, :need_h, :need_w, :]
    ocg = oc // groups
    acc = np.empty((n, oh, ow, oc), dtype)
    for g in range(groups):
        cols = np.stack([v[..., g * fic:(g + 1) * fic] for _, _, v in _windows(xp, kh, kw, sh, sw, dh, dw, oh, ow)], axis=3)
        cols = cols.reshape(n * oh * ow, kh * kw * fic)
        wg = wf[g * ocg:(g + 1) * ocg].reshape(ocg, kh * kw * fic)
        acc[..., g * ocg:(g + 1) * ocg] = (cols @ wg.T).reshape(n, oh, ow, ocg)
    return acc


def depthwise_acc(x, in_zp, w, w_zp, bias, stride, dilation, pads, out_hw, multiplier) -> np.ndarray:
    """DEPTHWISE_CONV_2D accumulator: output channel oc = ic * multiplier + m.

    w: [1,KH,KW,OC]; acc[n,oy,ox,oc] = bias[oc] + sum_{ky,kx} (w[ky,kx,oc] - w_zp) *
    (x[n, oy*sh + ky*dh - top, ox*sw + kx*dw - left, oc // multiplier] - in_zp), taps
    outside the image skipped. Exact int64.
    """
    acc = depthwise_sums(x, in_zp, w, w_zp, stride, dilation, pads, out_hw, multiplier, np.int64)
    if bias is not None:
        acc += np.asarray(bias, np.int64)
    return acc


def depthwise_sums(x, in_zp, w, w_zp, stride, dilation, pads, out_hw, multiplier, dtype) -> np.ndarray:
    """The depthwise sums without bias in `dtype` (int64, or a float type proved exact by
    `exact_float_dtype`)."""
    x = np.asarray(x).astype(dtype) - dtype(in_zp)
    w = (np.asarray(w, np.int64) - np.asarray(w_zp, np.int64)).astype(dtype)
    n, h, wd, ic = x.shape
    _, kh, kw, oc = w.shape
    if multiplier > 1:
        x = np.repeat(x, multiplier, axis=3)
    sh, sw = stride
    dh, dw = dilation
    oh, ow = out_hw
    ph, pw = pads
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    xp = np.zeros((n, max(need_h, h + ph), max(need_w, wd + pw), oc), dtype)
    xp[:, ph:ph + h, pw:pw + wd, :] = x
    acc = np.zeros((n, oh, ow, oc), dtype)
    for ky, kx, v in _windows(xp, kh, kw, sh, sw, dh, dw, oh, ow):
        acc += v * w[0, ky, kx, :]
    return acc


def fully_connected_acc(x, in_zp, w, w_zp, bias) -> np.ndarray:
    """FULLY_CONNECTED accumulator: acc[b, o] = bias[o] + sum_i (w[o,i] - w_zp) * (x[b,i] - in_zp).

    x: [B, IC] (the caller flattens leading dims); w: [OC, IC]. Exact int64.
    """
    xf = (np.asarray(x, np.int64) - int(in_zp)).astype(np.float64)
    wf = (np.asarray(w, np.int64) - np.asarray(w_zp, np.int64).reshape(-1, 1)).astype(np.float64)
    _check_exact_fanin(xf.shape[-1], 255, 255)
    acc = (xf @ wf.T).astype(np.int64)
    if bias is not None:
        acc += np.asarray(bias, np.int64)
    return acc


def requantize_float(acc, effective_scale) -> np.ndarray:
    """FULLY_CONNECTED (reference, int8): ``(int32) std::round(double(acc) * eff)``.

    eff = double(in_s) * double(w_s) / double(out_s) (per channel if w is); halves away
    from zero; products beyond int32 are saturated here (C's cast would be undefined).
    """
    v = np.asarray(acc, np.float64) * np.asarray(effective_scale, np.float64)
    v = np.sign(v) * np.floor(np.abs(v) + 0.5)
    return np.clip(v, INT32_MIN, INT32_MAX).astype(np.int64)


def requantize(acc, q, shift, *, single_rounding: bool) -> np.ndarray:
    """Integer requantization of int32 accumulators: ``MultiplyByQuantizedMultiplier``,
    per channel along the last axis (compiled; == `arith.multiply_by_quantized_multiplier`)."""
    from qsim.tflite._numba import mbqm_lastaxis

    return mbqm_lastaxis(acc, q, shift, single_rounding)


def add(x1, zp1, m1, x2, zp2, m2, m_out, left_shift: int, *, single_rounding: bool) -> np.ndarray:
    """ADD (int8 / uint8), before adding out_zp and clamping.

    a = (x1 - zp1) * 2^left_shift, b likewise; a' = MBQM(a, m1), b' = MBQM(b, m2) with
    each m = (q, shift <= 0); returns MBQM(a' + b', m_out). Three roundings (double
    rounding each in the pip build). x1 and x2 broadcast like NumPy.
    """
    a = (np.asarray(x1, np.int64) - int(zp1)) << left_shift
    b = (np.asarray(x2, np.int64) - int(zp2)) << left_shift
    a = multiply_by_quantized_multiplier(a, *m1, single_rounding=single_rounding)
    b = multiply_by_quantized_multiplier(b, *m2, single_rounding=single_rounding)
    return multiply_by_quantized_multiplier(a + b, *m_out, single_rounding=single_rounding)


def mul(x1, zp1, x2, zp2, q, shift, *, single_rounding: bool) -> np.ndarray:
    """MUL (int8 / uint8), before out_zp and clamp: MBQM((x1 - zp1) * (x2 - zp2), q, shift)."""
    p = (np.asarray(x1, np.int64) - int(zp1)) * (np.asarray(x2, np.int64) - int(zp2))
    return multiply_by_quantized_multiplier(p, q, shift, single_rounding=single_rounding)


def average_pool(x, k, stride, pads, out_hw) -> tuple[np.ndarray, np.ndarray]:
    """AVERAGE_POOL_2D sums: (acc, n) with acc = sum of raw codes over the window clipped to
    the image (the zero point is not subtracted) and n = the number of valid cells."""
    xp = _pool_padded(x, k, stride, pads, out_hw, 0)
    inside = _pool_padded(np.ones((1, *np.shape(x)[1:3], 1), np.int64), k, stride, pads, out_hw, 0)
    (kh, kw), (sh, sw), (oh, ow) = k, stride, out_hw
    acc = np.zeros((xp.shape[0], oh, ow, xp.shape[3]), np.int64)
    cnt = np.zeros((1, oh, ow, 1), np.int64)
    for _ky, _kx, v in _windows(xp, kh, kw, sh, sw, 1, 1, oh, ow):
        acc += v
    for _ky, _kx, v in _windows(inside, kh, kw, sh, sw, 1, 1, oh, ow):
        cnt += v
    return acc, np.broadcast_to(cnt, acc.shape)


def _pool_padded(x, k, stride, pads, out_hw, fill: int) -> np.ndarray:
    """int64 `x` placed at (top, left) = `pads` in a `fill` canvas every window of the pooling fits in."""
    x = np.asarray(x, np.int64)
    nb, h, wd, c = x.shape
    (kh, kw), (sh, sw), (oh, ow), (ph, pw) = k, stride, out_hw, pads
    need_h = (oh - 1) * sh + kh
    need_w = (ow - 1) * sw + kw
    xp = np.full((nb, max(need_h, h + ph), max(need_w, wd + pw), c), fill, np.int64)
    xp[:, ph:ph + h, pw:pw + wd, :] = x
    return xp


def average_round(acc, n) -> np.ndarray:
    """(acc + n/2) / n if acc > 0 else (acc - n/2) / n, C division: halves away from 0."""
    acc = np.asarray(acc, np.int64)
    n = np.asarray(n, np.int64)
    half = n // 2
    num = np.where(acc > 0, acc + half, acc - half)
    q = np.abs(num) // n
    return np.where(num < 0, -q, q)


def max_pool(x, k, stride, pads, out_hw) -> np.ndarray:
    """MAX_POOL_2D: the max of raw codes over the window clipped to the image."""
    low = np.iinfo(np.int64).min
    xp = _pool_padded(x, k, stride, pads, out_hw, low)
    (kh, kw), (sh, sw), (oh, ow) = k, stride, out_hw
    out = np.full((xp.shape[0], oh, ow, xp.shape[3]), low, np.int64)
    for _, _, v in _windows(xp, kh, kw, sh, sw, 1, 1, oh, ow):
        np.maximum(out, v, out=out)
    return out


def mean_multiplier(q0: int, s0: int, n: int) -> tuple[int, int]:
    """MEAN: fold 1/n into (q0, s0): k = min(floor(log2 n), 32, 31 + s0),
    q = (q0 * 2^k) / n (truncating), shift = s0 - k."""
    k = min(n.bit_length() - 1, 32, 31 + s0)
    return (q0 << k) // n, s0 - k


def mean_sum(x, in_zp, axes) -> tuple[np.ndarray, int]:
    """MEAN sum over `axes` (keepdims) of raw codes minus in_zp * n; returns (sum, n)."""
    x = np.asarray(x, np.int64)
    n = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    return x.sum(axis=tuple(axes), keepdims=True) - int(in_zp) * n, n


# --- SOFTMAX: gemmlowp fixed point ----------------------------------------------------
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))  # exp(-2^k) in Q0.31


def exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    """gemmlowp: exp(a) for a in [-1/4, 0), Q0.31 in and out (Taylor around -1/8)."""
    constant_term = 1895147668  # exp(-1/8)
    constant_1_over_3 = 715827883
    x = a + (1 << 28)  # a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = saturating_rounding_multiply_by_pot(srdhm(x4_over_4 + x3, constant_1_over_3) + x2, -1)
    return constant_term + srdhm(constant_term, x + poly)


def exp_on_negative_values(a: np.ndarray, integer_bits: int = 5) -> np.ndarray:
    """gemmlowp ``exp_on_negative_values``: a <= 0 in Q(ib).(31-ib) -> exp(a) in Q0.31."""
    frac = 31 - integer_bits
    one_quarter = 1 << (frac - 2)
    mask = one_quarter - 1
    a = np.asarray(a, np.int64)
    a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, integer_bits))
    remainder = a_mod_quarter_minus_one_quarter - a
    for exponent, mult in _EXP_BARREL:
        if integer_bits > exponent:
            shift_amount = frac + exponent
            if shift_amount >= 0:
                hit = (remainder & (1 << shift_amount)) != 0
                result = np.where(hit, srdhm(result, mult), result)
    return np.where(a == 0, np.int64(INT32_MAX), result)


def one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """gemmlowp: 1/(1+a) for a in [0,1) Q0.31 -> Q0.31 (Newton-Raphson in Q2.29)."""
    s = np.asarray(a, np.int64) + INT32_MAX
    half_denominator = c_div(s + np.where(s >= 0, 1, -1), 2)  # RoundingHalfSum(a, One)
    constant_48_over_17 = 1515870810
    constant_neg_32_over_17 = -1010580540
    x = constant_48_over_17 + srdhm(half_denominator, constant_neg_32_over_17)
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = (1 << 29) - half_denominator_times_x
        x = x + saturating_rounding_multiply_by_pot(srdhm(x, one_minus), 2)
    return saturating_rounding_multiply_by_pot(x, 1)


def get_reciprocal(x: np.ndarray, integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """``GetReciprocal(x, integer_digits)``: (1/x as Q0.31 mantissa, num_bits_over_unit); x > 0."""
    x = np.asarray(x, np.int64)
    headroom_plus_one = 32 - _bit_length(x)  # CountLeadingZeros(uint32 x)
    num_bits_over_unit = integer_digits - headroom_plus_one
    shifted = ((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)
    return one_over_one_plus_x_for_x_in_0_1(shifted), num_bits_over_unit


def _bit_length(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.int64)
    out = np.zeros(x.shape, np.int64)
    v = x.copy()
    for s in (16, 8, 4, 2, 1):
        big = v >= (1 << s)
        out += np.where(big, s, 0)
        v = np.where(big, v >> s, v)
    return out + (v > 0)


def softmax_exp_table(q: int, left_shift: int, span: int) -> np.ndarray:
    """table[k] = exp_on_negative_values(SRDHM(-k * 2^left_shift, q)) for k in [0, span]:
    `softmax`'s e as a function of d = -k, for codes spanning at most `span` (255 for 8 bits)."""
    return exp_on_negative_values(srdhm(-np.arange(span + 1, dtype=np.int64) << left_shift, q), 5)


def softmax(x, q: int, left_shift: int, diff_min: int, out_min: int, out_max: int,
            exp_table: np.ndarray | None = None) -> np.ndarray:
    """SOFTMAX int8/uint8 (reference_ops::Softmax), over the last axis.

    d = x - max(row); entries with d >= diff_min: e = exp_on_negative_values(SRDHM(d *
    2^left_shift, q)) (Q5.26 -> Q0.31), sum = sum RDBPOT(e, 12) (Q12.19),
    (recip, nbou) = GetReciprocal(sum, 12), out = RDBPOT(SRDHM(recip, e), nbou + 23) +
    out_min, clamped; entries below diff_min give out_min. ``exp_table``
    (`softmax_exp_table`, prepared once per operator) gives the same e by lookup.
    """
    x = np.asarray(x, np.int64)
    d = x - x.max(axis=-1, keepdims=True)
    ok = d >= diff_min
    if exp_table is None:
        e = exp_on_negative_values(srdhm(np.where(ok, d, 0) << left_shift, q), 5)
    else:  # the same function of d, element for element
        e = exp_table[np.where(ok, -d, 0)]
    sum_of_exps = np.where(ok, rounding_divide_by_pot(e, 12), 0).sum(axis=-1, keepdims=True)
    recip, nbou = get_reciprocal(sum_of_exps, 12)
    out = rounding_divide_by_pot(srdhm(recip, e), nbou + 31 - 8) + out_min
    return np.where(ok, np.clip(out, out_min, out_max), out_min)


def logistic_lut(in_s: float, in_zp: int, out_s: float, out_zp: int, qmin: int, qmax: int) -> np.ndarray:
    """LOGISTIC table (``LUTPopulateInt8``, float32): lut[v - qmin] for v in [qmin, qmax].

    x = float32(in_s * (v - in_zp)); y = 1 / (1 + expf(-x)); q = (int)(round(y * (1/out_s))
    + out_zp), clamped. expf is taken as the float64 exp rounded to float32.
    """
    f32 = np.float32
    v = np.arange(qmin, qmax + 1, dtype=np.int64)
    x = f32(in_s) * (v - in_zp).astype(f32)
    ex = np.exp(-x.astype(np.float64)).astype(f32)
    y = f32(1.0) / (f32(1.0) + ex)
    inv = f32(1.0) / f32(out_s)
    t = (y * inv).astype(f32)
    r = (np.sign(t) * np.floor(np.abs(t).astype(np.float64) + 0.5)).astype(f32)  # TfLiteRound(float)
    qv = (r + f32(out_zp)).astype(f32).astype(np.int64)
    return np.clip(qv, qmin, qmax)


def resize_bilinear(x, out_hw, align_corners: bool, half_pixel_centers: bool, *, single_rounding: bool) -> np.ndarray:
    """RESIZE_BILINEAR int8/uint8 (``ResizeBilinearInteger``, 10-bit fixed point), raw codes.

    scale10 = (1024*in + out/2) / out (align_corners: (1024*(in-1) + (out-1)/2) / (out-1));
    s = v*scale10 (+ scale10/2 - 512 with half_pixel); lo = max(C-trunc(s/1024), 0),
    hi = min(C-trunc((s+1023)/1024), in-1); weights use the unclamped s; the 20-bit sum is
    rounded (sum +- 2^19) / 2^20 (double-rounding build) or (sum + 2^19) >> 20 (single).
    """
    x = np.asarray(x, np.int64)
    _, h, w, _ = x.shape
    oh, ow = out_hw
    ys, y0, y1 = _interp_axis(h, oh, align_corners, half_pixel_centers)
    xs, x0, x1 = _interp_axis(w, ow, align_corners, half_pixel_centers)
    fy = (ys - 1024 * y0)[None, :, None, None]
    fx = (xs - 1024 * x0)[None, None, :, None]
    r00 = x[:, y0][:, :, x0]
    r10 = x[:, y1][:, :, x0]
    r01 = x[:, y0][:, :, x1]
    r11 = x[:, y1][:, :, x1]
    s = (r00 * (1024 - fy) * (1024 - fx) + r10 * fy * (1024 - fx)
         + r01 * (1024 - fy) * fx + r11 * fy * fx)
    if single_rounding:
        return (s + (1 << 19)) >> 20
    return c_div(s + np.where(s > 0, 1 << 19, -(1 << 19)), 1 << 20)


def _interp_axis(n_in: int, n_out: int, align_corners: bool, half_pixel: bool):
    if align_corners and n_out > 1:
        scale10 = (1024 * (n_in - 1) + (n_out - 1) // 2) // (n_out - 1)
    else:
        scale10 = (1024 * n_in + n_out // 2) // n_out
    v = np.arange(n_out, dtype=np.int64)
    s = v * scale10 + (scale10 // 2 - 512 if half_pixel else 0)
    lo = np.maximum(c_div(s, 1024), 0)
    hi = np.minimum(c_div(s + 1023, 1024), n_in - 1)
    return s, lo, hi


def nearest_indices(n_in: int, n_out: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """RESIZE_NEAREST_NEIGHBOR source index per output index (float32 arithmetic)."""
    f32 = np.float32
    if align_corners and n_out > 1:
        scale = f32(n_in - 1) / f32(n_out - 1)
    else:
        scale = f32(n_in) / f32(n_out)
    offset = f32(0.5) if half_pixel else f32(0.0)
    v = (np.arange(n_out).astype(f32) + offset) * scale
    if align_corners:
        idx = (np.sign(v) * np.floor(np.abs(v).astype(np.float64) + 0.5)).astype(np.int64)
    else:
        idx = np.floor(v).astype(np.int64)
    idx = np.minimum(idx, n_in - 1)
    if half_pixel:
        idx = np.maximum(idx, 0)
    return idx


def concat_requant(x, in_s: float, in_zp: int, out_s: float, out_zp: int) -> np.ndarray:
    """CONCATENATION input with other parameters than the output (ConcatenationWithScaling):
    round(q * (s_i * (1/s_out)) - zp_i * s_i / s_out) + zp_out in float32 (before clamp)."""
    f32 = np.float32
    scale = f32(in_s) * (f32(1.0) / f32(out_s))
    bias = f32(-in_zp) * scale
    v = np.asarray(x).astype(f32) * scale + bias
    return (np.sign(v) * np.floor(np.abs(v).astype(np.float64) + 0.5)).astype(np.int64) + out_zp


def quantize_float(x, scale: float, zp: int, qmin: int, qmax: int) -> np.ndarray:
    """QUANTIZE float32 -> int8/uint8 (AffineQuantize): clamp(round(x / float32 scale) + zp)."""
    v = (np.asarray(x, np.float32) / np.float32(scale)).astype(np.float32)
    r = np.sign(v) * np.floor(np.abs(v).astype(np.float64) + 0.5)
    r = np.clip(np.nan_to_num(r, nan=0.0), -2.0**31, 2.0**31 - 1).astype(np.int64)
    return np.clip(r + zp, qmin, qmax)


def dequantize(q, scale: float, zp: int) -> np.ndarray:
    """DEQUANTIZE: float32(double(scale) * (q - zp))."""
    return (np.float64(np.float32(scale)) * (np.asarray(q, np.int64) - zp)).astype(np.float32)
