"""The CPU layers of the kmodel v3 runtime (``kpu.c``, SDK v0.5.x), with its arithmetic exactly.

Contract of every function: the C code's own types and operation order.

* ``float`` is IEEE binary32 and every operation rounds to it (NumPy float32; sums that
  the C accumulates in a loop are accumulated *in that order* here, in Numba loops, never
  pairwise). Multiply and add round separately: the C ``a * b + c`` is modelled unfused (a
  compiler that contracts it to RISC-V ``fmadd.s`` would round once; see docs/k210-v3.md).
* ``expf`` / ``sqrtf``: the correctly rounded binary32 result (computed in binary64, then
  rounded; ``sqrtf`` is exact IEEE). The K210's libm ``expf`` may differ from it by an ulp.
* ``roundf``: half away from zero. ``(int)x`` of a float: RISC-V ``fcvt.w.s`` (truncate;
  saturate to int32; NaN -> INT32_MAX), which is what the K210 executes for that cast.
* Integer layers (``quantized_add``) use int64 as the C does, shifting arithmetically; the
  runtime's ``kpu_carry_shift`` rounding (odd negative values go one further down) is kept.

Each function here has a slow per-element twin in `qsim.k210.kmodel_v3_ref`; tests compare
them and check hand-computed vectors.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

F32 = np.float32
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
FLT_MIN = np.float32(np.finfo(np.float32).tiny)  # kpu_softmax starts its max search here
L2_EPSILON = np.float32(1e-10)


def _f32(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def c_roundf(x: np.ndarray) -> np.ndarray:
    """C ``roundf``: nearest integer, ties away from zero (float32 in, float32 out)."""
    x = _f32(x)
    t = np.trunc(x)
    with np.errstate(invalid="ignore"):  # inf - inf: the inf passes through below
        frac = np.abs(x - t)  # exact: x and trunc(x) share the exponent range
    return np.where(frac >= F32(0.5), t + np.sign(x), t).astype(np.float32)


def f32_to_int32(x: np.ndarray) -> np.ndarray:
    """``(int)x`` as RISC-V ``fcvt.w.s`` with RTZ: truncate, saturate, NaN -> INT32_MAX (int64 out)."""
    x = _f32(x).astype(np.float64)
    out = np.where(np.isnan(x), INT32_MAX, np.clip(np.trunc(np.nan_to_num(x, nan=0.0)), INT32_MIN, INT32_MAX))
    return out.astype(np.int64)


# ---------------------------------------------------------------- element-wise
def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KL_ADD: ``dest[i] = a[i] + b[i]`` in float32."""
    with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN as the C float gives them
        return (_f32(a) + _f32(b)).astype(np.float32)


def carry_shift(v: np.ndarray, shift: int) -> np.ndarray:
    """``kpu_carry_shift``: v >> (shift-1); if odd, (v >> 1) + 1 (v >= 0) or (v >> 1) - 1 (v < 0)."""
    v = np.asarray(v, dtype=np.int64)
    if shift <= 0:
        return v.copy()
    v = v >> np.int64(shift - 1)
    odd = (v & 1) == 1
    half = v >> np.int64(1)
    return np.where(odd, np.where(v < 0, half - 1, half + 1), half)


def quantized_add(a: np.ndarray, b: np.ndarray, in_a_offset: int, in_a_mul: int, in_a_shift: int,
                  in_b_offset: int, in_b_mul: int, in_b_shift: int, out_offset: int, out_mul: int,
                  out_shift: int) -> np.ndarray:
    """KL_QUANTIZED_ADD on uint8 codes (int64 arithmetic, wrapping as the hardware's).

    Equal input shifts: ``v = ((a+oa)*ma + (b+ob)*mb) >> sa``; different shifts:
    ``v = ((a+oa)*ma >> sa) + ((b+ob)*mb >> sb)``; then ``carry_shift(v*mo, so) + oo``
    clamped to 0..255.
    """
    with np.errstate(over="ignore"):
        av = (np.asarray(a, np.int64) + np.int64(in_a_offset)) * np.int64(in_a_mul)
        bv = (np.asarray(b, np.int64) + np.int64(in_b_offset)) * np.int64(in_b_mul)
        if in_a_shift == in_b_shift:
            v = (av + bv) >> np.int64(in_a_shift)
        else:
            v = (av >> np.int64(in_a_shift)) + (bv >> np.int64(in_b_shift))
        v = carry_shift(v * np.int64(out_mul), out_shift) + np.int64(out_offset)
    return np.clip(v, 0, 255).astype(np.uint8)


def quantize(x: np.ndarray, scale: float, bias: float) -> np.ndarray:
    """KL_QUANTIZE: ``s = 1.f / scale``; ``v = (int)roundf((x - bias) * s)`` clamped to 0..255."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        s = F32(1.0) / F32(scale)
        v = f32_to_int32(c_roundf((_f32(x) - F32(bias)) * s))
    return np.clip(v, 0, 255).astype(np.uint8)


def dequantize(q: np.ndarray, scale: float, bias: float) -> np.ndarray:
    """KL_DEQUANTIZE: ``dest = (float)q * scale + bias`` (two float32 roundings)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return (np.asarray(q, np.uint8).astype(np.float32) * F32(scale) + F32(bias)).astype(np.float32)


def channelwise_dequantize(q: np.ndarray, channel_size: int, scales: np.ndarray, biases: np.ndarray) -> np.ndarray:
    """KL_CHANNELWISE_DEQUANTIZE: channel c of ``channel_size`` codes uses (scales[c], biases[c])."""
    c = len(scales)
    qf = np.asarray(q, np.uint8)[: c * channel_size].astype(np.float32).reshape(c, channel_size)
    with np.errstate(over="ignore", invalid="ignore"):
        return (qf * _f32(scales)[:, None] + _f32(biases)[:, None]).astype(np.float32).reshape(-1)


def requantize(q: np.ndarray, table: np.ndarray) -> np.ndarray:
    """KL_REQUANTIZE: ``dest[i] = table[src[i]]``."""
    return np.asarray(table, np.uint8)[np.asarray(q, np.uint8)]


def logistic(x: np.ndarray) -> np.ndarray:
    """KL_LOGISTIC: ``1.f / (1.f + expf(-x))``."""
    x = _f32(x)
    with np.errstate(over="ignore"):
        e = np.exp(-x.astype(np.float64)).astype(np.float32)
        return (F32(1.0) / (F32(1.0) + e)).astype(np.float32)


# ---------------------------------------------------------------- loops (order matters for float sums)
@njit(cache=True, error_model="numpy")  # IEEE x/0, as C (not ZeroDivisionError)
def _gap(x, kernel_size, channels):
    out = np.empty(channels, np.float32)
    k = np.float32(kernel_size)
    for c in range(channels):
        s = np.float32(0.0)
        for i in range(kernel_size):
            s += x[c * kernel_size + i]
        out[c] = s / k
    return out


def global_average_pool2d(x: np.ndarray, kernel_size: int, channels: int) -> np.ndarray:
    """KL_GLOBAL_AVERAGE_POOL2D: per channel a float32 running sum of ``kernel_size`` values / kernel_size."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return _gap(_f32(x), int(kernel_size), int(channels))


@njit(cache=True, error_model="numpy")  # IEEE x/0, as C (not ZeroDivisionError)
def _pool(x, iw, ih, ow, oh, oc, kw, kh, sw, sh, pw, ph, average, out):
    i = 0
    for c in range(oc):
        base = iw * ih * c
        for oy in range(oh):
            for ox in range(ow):
                x0 = ox * sw - pw
                y0 = oy * sh - ph
                kx0 = max(0, -x0)
                kx1 = min(kw, iw - x0)
                ky0 = max(0, -y0)
                ky1 = min(kh, ih - y0)
                if average:
                    s = np.float32(0.0)
                    n = np.float32(0.0)
                    for ky in range(ky0, ky1):
                        for kx in range(kx0, kx1):
                            s += x[base + (y0 + ky) * iw + x0 + kx]
                            n += np.float32(1.0)
                    out[i] = s / n
                else:
                    m = 0
                    for ky in range(ky0, ky1):
                        for kx in range(kx0, kx1):
                            v = x[base + (y0 + ky) * iw + x0 + kx]
                            if v > m:
                                m = v
                    out[i] = m
                i += 1
    return out


def _pool_args(in_shape, out_shape, kernel, stride, padding):
    (iw, ih, _ic), (ow, oh, oc) = in_shape, out_shape
    return (int(iw), int(ih), int(ow), int(oh), int(oc), int(kernel[0]), int(kernel[1]), int(stride[0]),
            int(stride[1]), int(padding[0]), int(padding[1]))


def quantized_max_pool2d(x: np.ndarray, in_shape, out_shape, kernel, stride, padding) -> np.ndarray:
    """KL_QUANTIZED_MAX_POOL2D: uint8 max over the in-map part of each window (0 if none).

    Shapes are kpu.h's (width, height, channels); kernel/stride/padding are (width, height).
    Window origin ``out*stride - padding``; only taps inside the map are visited.
    """
    a = _pool_args(in_shape, out_shape, kernel, stride, padding)
    out = np.empty(a[2] * a[3] * a[4], np.uint8)
    return _pool(np.ascontiguousarray(x, np.uint8), *a, False, out)


def average_pool2d(x: np.ndarray, in_shape, out_shape, kernel, stride, padding) -> np.ndarray:
    """KL_AVERAGE_POOL2D: float32 running sum of the in-map taps / their count (as a float).

    The body's ``act`` field is read but not applied by kpu.c; neither is it here.
    """
    a = _pool_args(in_shape, out_shape, kernel, stride, padding)
    out = np.empty(a[2] * a[3] * a[4], np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _pool(_f32(x), *a, True, out)


@njit(cache=True, error_model="numpy")  # IEEE x/0, as C (not ZeroDivisionError)
def _l2(x):
    n = x.size
    s = np.float32(0.0)
    for i in range(n):
        s += x[i] * x[i]
    if s < np.float32(1e-10):
        s = np.float32(1e-10)
    s = np.float32(1.0) / np.float32(math.sqrt(s))
    out = np.empty(n, np.float32)
    for i in range(n):
        out[i] = x[i] * s
    return out


def l2_normalization(x: np.ndarray) -> np.ndarray:
    """KL_L2_NORMALIZATION: ``sum += x*x`` (float32, in order), floor at 1e-10f, ``x * (1/sqrtf(sum))``."""
    return _l2(_f32(x))


@njit(cache=True, error_model="numpy")  # IEEE x/0, as C (not ZeroDivisionError)
def _softmax(x, flt_min):
    n = x.size
    m = flt_min
    for i in range(n):
        if x[i] > m:  # fmaxf(m, x): a NaN x leaves m (m is never NaN)
            m = x[i]
    out = np.empty(n, np.float32)
    s = np.float32(0.0)
    for i in range(n):
        e = np.float32(math.exp(np.float64(x[i] - m)))
        s += e
        out[i] = e
    for i in range(n):
        out[i] = out[i] / s
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    """KL_SOFTMAX over one vector: max from FLT_MIN (so an all-negative input keeps FLT_MIN), expf, sum, divide."""
    with np.errstate(all="ignore"):
        return _softmax(_f32(x), FLT_MIN)


@njit(cache=True, error_model="numpy")  # IEEE x/0, as C (not ZeroDivisionError)
def _fc(x, w, bias, in_c, out_c, act):
    out = np.empty(out_c, np.float32)
    for o in range(out_c):
        s = np.float32(0.0)
        for i in range(in_c):
            s += x[i] * w[o * in_c + i]
        v = s + bias[o]
        if act >= 1:  # max(v, 0) as the C macro: (v > 0) ? v : 0
            v = v if v > np.float32(0.0) else np.float32(0.0)
        if act == 2:  # min(v, 6)
            v = v if v < np.float32(6.0) else np.float32(6.0)
        out[o] = v
    return out


def fully_connected(x: np.ndarray, weights: np.ndarray, bias: np.ndarray, in_channels: int, out_channels: int,
                    act: int) -> np.ndarray:
    """KL_FULLY_CONNECTED: per output ``sum += x[i] * w[o*in + i]`` (float32, in order) + bias, then act.

    ``act`` 0 linear, 1 relu ``(v > 0) ? v : 0``, 2 relu6 (then ``(v < 6) ? v : 6``).
    """
    with np.errstate(all="ignore"):
        return _fc(_f32(x), _f32(weights), _f32(bias), int(in_channels), int(out_channels), int(act))


# ---------------------------------------------------------------- data movement
def tensorflow_flatten(x: np.ndarray, shape) -> np.ndarray:
    """KL_TENSORFLOW_FLATTEN: CHW -> HWC order (kpu.h shape = width, height, channels)."""
    w, h, c = (int(v) for v in shape)
    return np.ascontiguousarray(np.asarray(x)[: c * h * w].reshape(c, h, w).transpose(1, 2, 0)).reshape(-1)


def nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """``(uint32)min(floorf(o * ((float)in / out)), in - 1)`` for o = 0..out-1 (float32 arithmetic)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = F32(in_size) / F32(out_size)
        o = np.arange(out_size, dtype=np.float32)
        f = np.floor((o * scale).astype(np.float32))
    return np.minimum(f, F32(in_size - 1)).astype(np.int64)


def resize_nearest_neighbor(x: np.ndarray, in_shape, out_width: int, out_height: int) -> np.ndarray:
    """KL_(QUANTIZED_)RESIZE_NEAREST_NEIGHBOR on a CHW map; ``align_corners`` is not used by kpu.c."""
    w, h, c = (int(v) for v in in_shape)
    src = np.asarray(x)[: c * h * w].reshape(c, h, w)
    ys, xs = nearest_indices(h, out_height), nearest_indices(w, out_width)
    return np.ascontiguousarray(src[:, ys][:, :, xs]).reshape(-1)
