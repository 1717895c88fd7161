"""Slow references of the kmodel v3 CPU layers: a line-by-line reading of ``kpu.c``, per element.

Floats are NumPy float32 *scalars*, so every ``+ - * /`` rounds to binary32 as the C
``float`` does; integers are Python ints (exact), narrowed where the C narrows. ``roundf``
and ``(int)`` are written from their definitions with Python floats (a binary32 value plus
0.5 is exact in binary64). Used only by tests, against `qsim.k210.kmodel_v3_ops`.
"""
from __future__ import annotations

import math

import numpy as np

F = np.float32
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT64 = 1 << 64


def roundf(v) -> float:
    """Ties away from zero, from the definition."""
    v = float(v)
    if math.isnan(v) or math.isinf(v):
        return v
    return float(math.floor(v + 0.5)) if v >= 0 else -float(math.floor(-v + 0.5))


def to_int32(v) -> int:
    """RISC-V fcvt.w.s (RTZ): NaN -> INT32_MAX, saturating."""
    v = float(v)
    if math.isnan(v):
        return INT32_MAX
    if math.isinf(v):
        return INT32_MAX if v > 0 else INT32_MIN
    return max(INT32_MIN, min(INT32_MAX, int(v)))  # int() truncates toward zero


def expf(v) -> np.float32:
    v = float(v)
    try:
        return F(math.exp(v))
    except OverflowError:
        return F(math.inf)


def _wrap64(v: int) -> int:
    v %= INT64
    return v - INT64 if v >= INT64 // 2 else v


def carry_shift(v: int, shift: int) -> int:
    if shift > 0:
        v >>= shift - 1
        if v & 1:
            v = (v >> 1) - 1 if v < 0 else (v >> 1) + 1
        else:
            v >>= 1
    return v


def add(a, b) -> list:
    with np.errstate(all="ignore"):
        return [F(x) + F(y) for x, y in zip(a, b)]


def quantized_add(a, b, oa, ma, sa, ob, mb, sb, oo, mo, so) -> list[int]:
    out = []
    for x, y in zip(a, b):
        x = _wrap64((int(x) + oa) * ma)
        y = _wrap64((int(y) + ob) * mb)
        if sa == sb:
            v = _wrap64(x + y) >> sa
        else:
            v = _wrap64((x >> sa) + (y >> sb))
        v = _wrap64(carry_shift(_wrap64(v * mo), so) + oo)
        out.append(min(0xFF, max(0, v)))
    return out


def quantize(x, scale, bias) -> list[int]:
    s = F(1.0) / F(scale)
    out = []
    with np.errstate(all="ignore"):
        for v in x:
            value = to_int32(roundf((F(v) - F(bias)) * s))
            out.append(min(0xFF, max(0, value)))
    return out


def dequantize(q, scale, bias) -> list:
    return [F(int(v)) * F(scale) + F(bias) for v in q]


def channelwise_dequantize(q, channel_size, scales, biases) -> list:
    out, i = [], 0
    for s, b in zip(scales, biases):
        for _ in range(channel_size):
            out.append(F(int(q[i])) * F(s) + F(b))
            i += 1
    return out


def requantize(q, table) -> list[int]:
    return [int(table[int(v)]) for v in q]


def logistic(x) -> list:
    with np.errstate(all="ignore"):
        return [F(1.0) / (F(1.0) + expf(-F(v))) for v in x]


def global_average_pool2d(x, kernel_size, channels) -> list:
    out, i = [], 0
    for _ in range(channels):
        s = F(0.0)
        for _ in range(kernel_size):
            s = s + F(x[i])
            i += 1
        with np.errstate(all="ignore"):
            out.append(s / F(kernel_size))
    return out


def pool2d(x, in_shape, out_shape, kernel, stride, padding, average: bool) -> list:
    (iw, ih, _), (ow, oh, oc) = in_shape, out_shape
    (kw, kh), (sw, sh), (pw, ph) = kernel, stride, padding
    out = []
    for c in range(oc):
        for oy in range(oh):
            for ox in range(ow):
                x0, y0 = ox * sw - pw, oy * sh - ph
                taps = [x[iw * ih * c + (y0 + ky) * iw + x0 + kx]
                        for ky in range(max(0, -y0), min(kh, ih - y0))
                        for kx in range(max(0, -x0), min(kw, iw - x0))]
                if average:
                    s, n = F(0.0), F(0.0)
                    for t in taps:
                        s, n = s + F(t), n + F(1.0)
                    with np.errstate(all="ignore"):
                        out.append(s / n)
                else:
                    m = 0
                    for t in taps:
                        m = max(m, int(t))
                    out.append(m)
    return out


def l2_normalization(x) -> list:
    with np.errstate(all="ignore"):
        s = F(0.0)
        for v in x:
            s = s + F(v) * F(v)
        if s < F(1e-10):
            s = F(1e-10)
        s = F(1.0) / F(math.sqrt(float(s)))
        return [F(v) * s for v in x]


def softmax(x) -> list:
    m = F(np.finfo(np.float32).tiny)
    for v in x:
        if not math.isnan(float(v)):
            m = max(m, F(v))
    with np.errstate(all="ignore"):
        e = [expf(F(v) - m) for v in x]
    s = F(0.0)
    for v in e:
        s = s + v
    with np.errstate(all="ignore"):
        return [v / s for v in e]


def fully_connected(x, weights, bias, in_c, out_c, act) -> list:
    out = []
    with np.errstate(all="ignore"):
        for o in range(out_c):
            s = F(0.0)
            for i in range(in_c):
                s = s + F(x[i]) * F(weights[o * in_c + i])
            v = s + F(bias[o])
            if act in (1, 2):
                v = v if v > 0 else F(0.0)
            if act == 2:
                v = v if v < 6 else F(6.0)
            out.append(v)
    return out


def tensorflow_flatten(x, shape) -> list:
    w, h, c = shape
    return [x[(ch * h + y) * w + xx] for y in range(h) for xx in range(w) for ch in range(c)]


def resize_nearest_neighbor(x, in_shape, out_w, out_h) -> list:
    w, h, c = in_shape
    hs = F(h) / F(out_h)
    ws = F(w) / F(out_w)
    out = []
    for ch in range(c):
        for oy in range(out_h):
            iy = int(min(math.floor(float(F(oy) * hs)), h - 1))
            for ox in range(out_w):
                ix = int(min(math.floor(float(F(ox) * ws)), w - 1))
                out.append(x[(ch * h + iy) * w + ix])
    return out
