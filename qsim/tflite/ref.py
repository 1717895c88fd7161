"""Slow, obviously-correct Python-int twins of `qsim.tflite.arith` and `qsim.tflite.ops`.

Each function states the TFLite reference contract with Python ints and
`fractions.Fraction` (exact rationals), one element at a time, with no bit tricks,
so the vectorised kernels can be checked against them by hypothesis (tests/tflite).
"""
from __future__ import annotations

import math
from fractions import Fraction

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def round_away(v: Fraction) -> int:
    """Nearest integer to an exact rational, halves away from zero."""
    f = math.floor(abs(v) + Fraction(1, 2))
    return f if v >= 0 else -f


def round_up(v: Fraction) -> int:
    """Nearest integer, halves toward +inf (``(n + half) >> s``)."""
    return math.floor(v + Fraction(1, 2))


def c_div(a: int, b: int) -> int:
    """C division: the exact quotient truncated toward zero."""
    return math.trunc(Fraction(a, b))


def wrap(v: int, bits: int) -> int:
    """Two's-complement wrap of v to a signed `bits`-bit word."""
    m = 1 << bits
    v %= m
    return v - m if v >= m // 2 else v


def srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul: a*b / 2^31 rounded to nearest, ties toward +inf.

    (gemmlowp's nudge 1 - 2^30 for negative products plus C's truncating division sends
    a negative tie toward zero, e.g. SRDHM(-1, 2^30) = 0, not -1.)
    """
    if a == b == INT32_MIN:
        return INT32_MAX
    return round_up(Fraction(a * b, 2**31))


def rdbpot(x: int, e: int) -> int:
    return round_away(Fraction(x, 2**e))


def mbqm(x: int, q: int, shift: int, single_rounding: bool) -> int:
    """MultiplyByQuantizedMultiplier: x * q * 2^(shift-31), rounded once or twice."""
    if single_rounding:
        return round_up(Fraction(x * q * 2**max(shift, 0), 2 ** (31 + max(-shift, 0))))
    hi = srdhm(wrap(x * 2 ** max(shift, 0), 32), q)
    return rdbpot(hi, max(-shift, 0))


def clamp(v: int, lo: int, hi: int) -> int:
    return lo if v < lo else hi if v > hi else v


# --- kernels, one output element at a time -------------------------------------------
def conv2d(x, in_zp, w, w_zp, bias, stride, dilation, pads, out_hw):
    """CONV_2D accumulators as nested lists [n][oy][ox][oc]: skip taps outside the image."""
    n_, h, wd, ic = len(x), len(x[0]), len(x[0][0]), len(x[0][0][0])
    oc_n, kh, kw, fic = len(w), len(w[0]), len(w[0][0]), len(w[0][0][0])
    groups = ic // fic
    out = []
    for n in range(n_):
        rows = []
        for oy in range(out_hw[0]):
            cols = []
            for ox in range(out_hw[1]):
                vals = []
                for oc in range(oc_n):
                    g = oc // (oc_n // groups)
                    acc = 0
                    for ky in range(kh):
                        for kx in range(kw):
                            iy = oy * stride[0] + ky * dilation[0] - pads[0]
                            ix = ox * stride[1] + kx * dilation[1] - pads[1]
                            if 0 <= iy < h and 0 <= ix < wd:
                                for c in range(fic):
                                    acc += (int(w[oc][ky][kx][c]) - w_zp) * (int(x[n][iy][ix][g * fic + c]) - in_zp)
                    vals.append(acc + (int(bias[oc]) if bias is not None else 0))
                cols.append(vals)
            rows.append(cols)
        out.append(rows)
    return out


def depthwise(x, in_zp, w, w_zp, bias, stride, dilation, pads, out_hw, multiplier):
    """DEPTHWISE_CONV_2D accumulators: output channel oc reads input channel oc // multiplier."""
    n_, h, wd = len(x), len(x[0]), len(x[0][0])
    kh, kw, oc_n = len(w[0]), len(w[0][0]), len(w[0][0][0])
    out = []
    for n in range(n_):
        rows = []
        for oy in range(out_hw[0]):
            cols = []
            for ox in range(out_hw[1]):
                vals = []
                for oc in range(oc_n):
                    acc = 0
                    for ky in range(kh):
                        for kx in range(kw):
                            iy = oy * stride[0] + ky * dilation[0] - pads[0]
                            ix = ox * stride[1] + kx * dilation[1] - pads[1]
                            if 0 <= iy < h and 0 <= ix < wd:
                                acc += (int(w[0][ky][kx][oc]) - w_zp) * (int(x[n][iy][ix][oc // multiplier]) - in_zp)
                    vals.append(acc + (int(bias[oc]) if bias is not None else 0))
                cols.append(vals)
            rows.append(cols)
        out.append(rows)
    return out


def fc_float_requant(acc: int, in_s: float, w_s: float, out_s: float) -> int:
    """FULLY_CONNECTED reference requantization: std::round(double(acc) * eff) (one double product)."""
    eff = in_s * w_s / out_s  # the double the kernel holds
    # the double product, exact rounding; beyond int32 C's cast is undefined: saturate
    return clamp(round_away(Fraction(float(acc) * eff)), INT32_MIN, INT32_MAX)


def add(x1, zp1, m1, x2, zp2, m2, m_out, left_shift, single_rounding):
    a = mbqm((x1 - zp1) * 2**left_shift, *m1, single_rounding)
    b = mbqm((x2 - zp2) * 2**left_shift, *m2, single_rounding)
    return mbqm(a + b, *m_out, single_rounding)


def mul(x1, zp1, x2, zp2, q, shift, single_rounding):
    return mbqm((x1 - zp1) * (x2 - zp2), q, shift, single_rounding)


def average(window: list[int]) -> int:
    """AVERAGE_POOL_2D of the valid cells: the exact mean of raw codes, halves away from 0."""
    return round_away(Fraction(sum(window), len(window)))


def pool_windows(x2d, k, stride, pads, out_hw):
    """Valid cells of every pooling window of a 2-D list (one channel)."""
    h, w = len(x2d), len(x2d[0])
    out = []
    for oy in range(out_hw[0]):
        row = []
        for ox in range(out_hw[1]):
            cells = [x2d[iy][ix]
                     for iy in range(oy * stride[0] - pads[0], oy * stride[0] - pads[0] + k[0])
                     for ix in range(ox * stride[1] - pads[1], ox * stride[1] - pads[1] + k[1])
                     if 0 <= iy < h and 0 <= ix < w]
            row.append(cells)
        out.append(row)
    return out


def mean(values: list[int], in_zp: int, q0: int, s0: int, out_zp: int, qmin: int, qmax: int, single_rounding) -> int:
    """MEAN: MBQM(sum - zp*n) with 1/n folded into the multiplier as (q0 * 2^k) // n."""
    n = len(values)
    k = min(math.floor(math.log2(n)), 32, 31 + s0)
    q = math.trunc(Fraction(q0 * 2**k, n))
    return clamp(mbqm(sum(values) - in_zp * n, q, s0 - k, single_rounding) + out_zp, qmin, qmax)


def resize_bilinear_1(img, oy, ox, out_hw, align_corners, half_pixel, single_rounding):
    """One RESIZE_BILINEAR output value of a 2-D list of codes (10-bit fixed point)."""
    def axis(v, n_in, n_out):
        if align_corners and n_out > 1:
            s10 = math.trunc(Fraction(1024 * (n_in - 1) + (n_out - 1) // 2, n_out - 1))
        else:
            s10 = math.trunc(Fraction(1024 * n_in + n_out // 2, n_out))
        s = v * s10 + (s10 // 2 - 512 if half_pixel else 0)
        lo = max(c_div(s, 1024), 0)
        hi = min(c_div(s + 1023, 1024), n_in - 1)
        return s, lo, hi

    sy, y0, y1 = axis(oy, len(img), out_hw[0])
    sx, x0, x1 = axis(ox, len(img[0]), out_hw[1])
    fy, fx = sy - 1024 * y0, sx - 1024 * x0
    total = (img[y0][x0] * (1024 - fy) * (1024 - fx) + img[y1][x0] * fy * (1024 - fx)
             + img[y0][x1] * (1024 - fy) * fx + img[y1][x1] * fy * fx)
    if single_rounding:
        return round_up(Fraction(total, 2**20))
    return round_away(Fraction(total, 2**20))


# --- SOFTMAX: gemmlowp fixed point, scalar ---------------------------------------------
def _sat32(v: int) -> int:
    return clamp(v, INT32_MIN, INT32_MAX)


def _exp_quarter(a: int) -> int:
    x = a + 2**28
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    poly = rdbpot(srdhm(rdbpot(x4, 2) + x3, 715827883) + x2, 1)
    return 1895147668 + srdhm(1895147668, x + poly)


def exp_on_negative_values(a: int) -> int:
    """exp(a) for a <= 0 in Q5.26, result Q0.31 (gemmlowp, integer bits 5)."""
    if a == 0:
        return INT32_MAX
    quarter = 2**24
    amq = (a % quarter) - quarter  # (a & mask) - 1/4: a mod 1/4 in [-1/4, 0)
    result = _exp_quarter(_sat32(amq * 32))
    remainder = amq - a
    for k, m in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                 (2, 39332535), (3, 720401), (4, 242)):
        if (remainder >> (26 + k)) & 1:
            result = srdhm(result, m)
    return result


def reciprocal(x: int, integer_digits: int) -> tuple[int, int]:
    """GetReciprocal: 1/x (x > 0, Q(integer_digits)) as (Q0.31 mantissa, num_bits_over_unit)."""
    headroom_plus_one = 32 - x.bit_length()
    nbou = integer_digits - headroom_plus_one
    a = ((x << headroom_plus_one) % 2**32) - 2**31
    s = a + INT32_MAX
    half_den = math.trunc(Fraction(s + (1 if s >= 0 else -1), 2))
    y = 1515870810 + srdhm(half_den, -1010580540)
    for _ in range(3):
        y = y + _sat32(srdhm(y, 2**29 - srdhm(half_den, y)) * 4)
    return _sat32(y * 2), nbou


def softmax_row(row: list[int], q: int, left_shift: int, diff_min: int, out_min: int, out_max: int) -> list[int]:
    mx = max(row)
    exps = {}
    for i, v in enumerate(row):
        d = v - mx
        if d >= diff_min:
            exps[i] = exp_on_negative_values(srdhm(d * 2**left_shift, q))
    total = sum(rdbpot(e, 12) for e in exps.values())
    rec, nbou = reciprocal(total, 12)
    return [clamp(rdbpot(srdhm(rec, exps[i]), nbou + 23) + out_min, out_min, out_max) if i in exps else out_min
            for i in range(len(row))]
