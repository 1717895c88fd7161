"""Float kernels (NumPy, NHWC, batch first) used by the float executor.

Contract: every function takes and returns arrays of one float dtype (float32 or float64,
the caller's choice); weights are cast to that dtype; no rounding or overflow is modelled.
They follow Keras/TensorFlow semantics exactly where the definition is discrete:

* `conv2d`: im2col (one strided view per kernel tap) + one BLAS matmul per image (so the
  batch size cannot change any result bit); a 1×1 conv is a plain matmul. Pads are explicit (top, bottom, left, right) or ``"same"`` (TF rule).
* `depthwise_conv2d`: multiply-add one tap at a time (row-major taps), channel multiplier
  last (output channel ``c * mult + m`` as in Keras); compiled with Numba, one output row
  per task.
* `upsample_bilinear`: ``tf.image.resize`` half-pixel sampling, no antialias (what Keras 3's
  ``UpSampling2D(interpolation="bilinear")`` calls): source coordinate
  ``(i + 0.5) / f - 0.5``, neighbours clamped to the edge, weights ``frac`` and ``1 - frac``.
* `relu`: Keras ``ReLU(max_value, negative_slope, threshold)``.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from qsim.errors import InputError
from qsim.graph.ir import resolve_pads
from qsim.kernels import workspace
from qsim.kernels.blas import gemm


def pad(x: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """Zero padding of H and W by (top, bottom, left, right)."""
    t, b, l, r = pads
    if not (t or b or l or r):
        return x
    n, h, w, c = x.shape
    out = np.zeros((n, h + t + b, w + l + r, c), dtype=x.dtype)
    out[:, t:t + h, l:l + w, :] = x
    return out


def _taps(xp: np.ndarray, kh: int, kw: int, strides, dilation, out_hw):
    """Yield (i, j, view) for each kernel tap: the input pixels that tap multiplies."""
    sh, sw = strides
    dh, dw = dilation
    oh, ow = out_hw
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dh, j * dw
            yield i, j, xp[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :]


def _geometry(x, kernel, strides, pads, dilation):
    """((top, bottom, left, right) pads, output height, output width); an `InputError` when
    the padded input is smaller than the (dilated) kernel."""
    kh, kw = kernel.shape[:2]
    t, b, l, r = resolve_pads(pads, x.shape[1:3], (kh, kw), strides, dilation)
    ph, pw = x.shape[1] + t + b, x.shape[2] + l + r
    oh = (ph - ((kh - 1) * dilation[0] + 1)) // strides[0] + 1
    ow = (pw - ((kw - 1) * dilation[1] + 1)) // strides[1] + 1
    if oh < 1 or ow < 1:
        raise InputError(f"input {x.shape[1]}x{x.shape[2]} (padded {ph}x{pw}) is smaller than the {kh}x{kw} kernel")
    return (t, b, l, r), oh, ow


def _prepare(x, kernel, strides, pads, dilation):
    pads4, oh, ow = _geometry(x, kernel, strides, pads, dilation)
    return pad(x, pads4), oh, ow


def _act_mode(relu: bool, relu_max) -> int:
    """0 no ReLU, 1 ``np.clip(v, 0, None)`` (= ``np.maximum(v, 0)``: -0.0 becomes +0.0),
    2 ``np.clip(v, 0, relu_max)`` (-0.0 stays -0.0): the two NumPy semantics `relu` has."""
    return 0 if not relu else (1 if relu_max is None else 2)


@njit(cache=True, inline="always")
def _act(v, mode, zero, cap):
    """One value through `_act_mode`'s activation, bit for bit as NumPy (NaN kept)."""
    if mode == 1:
        return v if (v > zero or v != v) else zero
    if mode == 2:
        if v < zero:
            v = zero
        if v > cap:
            v = cap
    return v


@njit(cache=True, parallel=True)
def _bias_act_rows(acc, bias, has_bias, mode, zero, cap, pre, keep_pre):
    """acc[r] (+ bias) in place, then the activation in place; the pre-activation sums go
    to ``pre`` first when `keep_pre` (the trace keeps the MAC's own tensor)."""
    rows, ch = acc.shape
    for r in prange(rows):
        a = acc[r]
        p = pre[r] if keep_pre else pre[0]
        for j in range(ch):
            v = a[j] + bias[j] if has_bias else a[j]
            if keep_pre:
                p[j] = v
            a[j] = _act(v, mode, zero, cap)


def _finish(out2d: np.ndarray, bias, relu: bool, relu_max, keep_pre: bool):
    """Bias and fused activation on the (rows, C) sums `out2d`, in place: (post, pre or None)."""
    dt = out2d.dtype
    mode = _act_mode(relu, relu_max)
    if mode == 0:
        if bias is not None:
            out2d += bias.astype(dt, copy=False)
        return out2d, None
    pre = workspace.empty(out2d.shape if keep_pre else (1, out2d.shape[1]), dt)
    b = np.zeros(out2d.shape[1], dt) if bias is None else np.ascontiguousarray(bias, dtype=dt)
    _bias_act_rows(out2d, b, bias is not None, mode, dt.type(0), dt.type(0 if relu_max is None else relu_max),
                   pre, keep_pre)
    return out2d, (pre if keep_pre else None)


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None,
           strides=(1, 1), pads="same", dilation=(1, 1), *, relu: bool = False, relu_max=None,
           keep_pre: bool = False):
    """Keras Conv2D: x (N,H,W,Cin), kernel (KH,KW,Cin,Cout) → (N,OH,OW,Cout).

    With `relu`, a following Keras ``ReLU(max_value=relu_max)`` is applied in the same pass
    as the bias (the same bits as `relu` on the result); with `keep_pre` too, returns
    ``(post, pre)``, else only the activations.
    """
    kernel = kernel.astype(x.dtype, copy=False)
    kh, kw, cin, cout = kernel.shape
    xp, oh, ow = _prepare(x, kernel, strides, pads, dilation)
    n = x.shape[0]
    w2d = kernel.reshape(kh * kw * cin, cout)
    out = workspace.empty((n, oh * ow, cout), x.dtype)  # recycled: no page faults
    # One GEMM per image: the same BLAS call whatever the batch size, so batching
    # cannot change a single bit of any image's result.
    for b in range(n):
        if kh == 1 and kw == 1:
            view = next(_taps(xp[b:b + 1], 1, 1, strides, dilation, (oh, ow)))[2]
            cols = np.ascontiguousarray(view).reshape(oh * ow, cin)
        else:
            cols6 = workspace.empty((1, oh, ow, kh, kw, cin), x.dtype)
            for i, j, view in _taps(xp[b:b + 1], kh, kw, strides, dilation, (oh, ow)):
                cols6[:, :, :, i, j, :] = view
            cols = cols6.reshape(oh * ow, kh * kw * cin)
        gemm(cols, w2d, out=out[b])
    post, pre = _finish(out.reshape(n * oh * ow, cout), bias, relu, relu_max, keep_pre)
    post = post.reshape(n, oh, ow, cout)
    if relu and keep_pre:
        return post, pre.reshape(n, oh, ow, cout)
    return post


@njit(cache=True, parallel=True)
def _depthwise_rows(x, kernel, bias, has_bias, sh, sw, pt, pl, dh, dw, oh, ow, mult, mode, zero, cap,
                    out, pre, keep_pre):
    """out[b, oy, ox, c*mult+m] = act(sum over in-image taps (row-major) of x * kernel + bias).

    `kernel` is (KH, KW, C*mult), C-contiguous. Each output is summed by one thread in tap
    order from +0.0, the order of the tap-by-tap NumPy formula on the zero-padded input:
    a padded tap adds 0 * w = +-0.0 (finite weights), which leaves any partial sum unchanged
    (it starts at +0.0 and, rounding to nearest, never becomes -0.0), so skipping it is the
    same bits. Thread count and batch size change no bit.
    """
    n, h, wid, c = x.shape
    kh, kw = kernel.shape[0], kernel.shape[1]
    cm = c * mult
    for r in prange(n * oh):
        b = r // oh
        oy = r % oh
        acc = np.empty(cm, dtype=out.dtype)
        iy0 = oy * sh - pt
        rows_inside = iy0 >= 0 and iy0 + (kh - 1) * dh < h
        for ox in range(ow):
            ix0 = ox * sw - pl
            if mult == 1 and kh == 3 and kw == 3 and rows_inside and ix0 >= 0 and ix0 + 2 * dw < wid:
                # interior 3x3 window: the nine taps in one pass, in row-major order
                iy1, iy2, ia, ib, ic = iy0 + dh, iy0 + 2 * dh, ix0, ix0 + dw, ix0 + 2 * dw
                x00, x01, x02 = x[b, iy0, ia], x[b, iy0, ib], x[b, iy0, ic]
                x10, x11, x12 = x[b, iy1, ia], x[b, iy1, ib], x[b, iy1, ic]
                x20, x21, x22 = x[b, iy2, ia], x[b, iy2, ib], x[b, iy2, ic]
                w00, w01, w02 = kernel[0, 0], kernel[0, 1], kernel[0, 2]
                w10, w11, w12 = kernel[1, 0], kernel[1, 1], kernel[1, 2]
                w20, w21, w22 = kernel[2, 0], kernel[2, 1], kernel[2, 2]
                for ci in range(c):
                    acc[ci] = (((((((((zero + x00[ci] * w00[ci]) + x01[ci] * w01[ci]) + x02[ci] * w02[ci])
                                    + x10[ci] * w10[ci]) + x11[ci] * w11[ci]) + x12[ci] * w12[ci])
                                 + x20[ci] * w20[ci]) + x21[ci] * w21[ci]) + x22[ci] * w22[ci])
            else:
                acc[:] = zero
                for ky in range(kh):
                    iy = iy0 + ky * dh
                    if iy < 0 or iy >= h:
                        continue
                    for kx in range(kw):
                        ix = ix0 + kx * dw
                        if ix < 0 or ix >= wid:
                            continue
                        xs = x[b, iy, ix]
                        ws = kernel[ky, kx]
                        if mult == 1:
                            for ci in range(c):
                                acc[ci] += xs[ci] * ws[ci]
                        else:
                            for ci in range(c):
                                for m in range(mult):
                                    acc[ci * mult + m] += xs[ci] * ws[ci * mult + m]
            o = out[b, oy, ox]
            p = pre[b, oy, ox] if keep_pre else pre[0, 0, 0]
            for j in range(cm):
                v = acc[j] + bias[j] if has_bias else acc[j]
                if keep_pre:
                    p[j] = v
                o[j] = _act(v, mode, zero, cap)


def depthwise_conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None,
                     strides=(1, 1), pads="same", dilation=(1, 1), *, relu: bool = False, relu_max=None,
                     keep_pre: bool = False):
    """Keras DepthwiseConv2D: kernel (KH,KW,C,mult) → (N,OH,OW,C*mult).

    Compiled (`_depthwise_rows`): taps in row-major order, then the bias, then the fused
    activation (`relu`, `relu_max`, `keep_pre` as in `conv2d`).
    """
    dt = x.dtype
    kh, kw, c, mult = kernel.shape
    (t, _, l, _), oh, ow = _geometry(x, kernel, strides, pads, dilation)
    k3 = np.ascontiguousarray(kernel.astype(dt, copy=False).reshape(kh, kw, c * mult))
    mode = _act_mode(relu, relu_max)
    keep_pre = keep_pre and mode != 0
    shape = (x.shape[0], oh, ow, c * mult)
    out = workspace.empty(shape, dt)
    pre = workspace.empty(shape if keep_pre else (1, 1, 1, c * mult), dt)
    bias_v = np.zeros(c * mult, dt) if bias is None else np.ascontiguousarray(bias, dtype=dt)
    _depthwise_rows(np.ascontiguousarray(x), k3, bias_v, bias is not None, int(strides[0]), int(strides[1]), t, l,
                    int(dilation[0]), int(dilation[1]), oh, ow, mult, mode, dt.type(0),
                    dt.type(0 if relu_max is None else relu_max), out, pre, keep_pre)
    if relu and keep_pre:
        return out, pre
    return out


def batch_norm(x: np.ndarray, gamma, beta, mean, variance, epsilon: float) -> np.ndarray:
    """Inference BatchNorm, computed as Keras does: (x - mean) * (gamma / sqrt(var + eps)) + beta."""
    dt = x.dtype
    inv = (gamma.astype(dt) / np.sqrt(variance.astype(dt) + dt.type(epsilon))).astype(dt)
    return (x - mean.astype(dt)) * inv + beta.astype(dt)


def relu(x: np.ndarray, max_value: float | None = None, negative_slope: float = 0.0,
         threshold: float = 0.0) -> np.ndarray:
    """Keras ReLU: x if threshold <= x < max_value; max_value above; slope·(x - threshold) below."""
    dt = x.dtype.type
    if negative_slope == 0.0 and threshold == 0.0:
        return np.clip(x, dt(0), None if max_value is None else dt(max_value))
    else:
        out = np.where(x >= dt(threshold), x, dt(negative_slope) * (x - dt(threshold)))
    if max_value is not None:
        out = np.minimum(out, dt(max_value))
    return out.astype(x.dtype, copy=False)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, overflow-free for large |x|."""
    dt = x.dtype.type
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, dt(1) / (dt(1) + e), e / (dt(1) + e)).astype(x.dtype, copy=False)


def add(*xs: np.ndarray) -> np.ndarray:
    out = xs[0].copy()
    for other in xs[1:]:
        out += other
    return out


def concat(*xs: np.ndarray) -> np.ndarray:
    return np.concatenate(xs, axis=-1)


def upsample_nearest(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Repeat each pixel fh×fw times (Keras UpSampling2D nearest)."""
    return np.repeat(np.repeat(x, size[0], axis=1), size[1], axis=2)


def bilinear_weights(in_size: int, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower index, upper index, float32 weight of upper) per output pixel, half-pixel centres.

    Computed in float32 exactly as TensorFlow's ResizeBilinear kernel does:
    ``scale = in / out``, ``src = (i + 0.5) * scale - 0.5``, ``lerp = src - floor(src)``,
    neighbours ``max(floor(src), 0)`` and ``min(ceil(src), in - 1)``.

    >>> lo, hi, frac = bilinear_weights(3, 2)
    >>> lo.tolist(), hi.tolist(), frac.tolist()
    ([0, 0, 0, 1, 1, 2], [0, 1, 1, 2, 2, 2], [0.75, 0.25, 0.75, 0.25, 0.75, 0.25])
    """
    f32 = np.float32
    out_size = in_size * factor
    scale = f32(in_size) / f32(out_size)
    src = (np.arange(out_size, dtype=f32) + f32(0.5)) * scale - f32(0.5)
    floor = np.floor(src)
    lower = np.maximum(floor, 0).astype(np.int64)
    upper = np.minimum(np.ceil(src), in_size - 1).astype(np.int64)
    return lower, upper, (src - floor).astype(f32)


def upsample_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Keras 3 UpSampling2D(interpolation="bilinear") = tf.image.resize bilinear, half-pixel.

    Same order of operations as TensorFlow's kernel: interpolate along W (top and bottom
    rows), then along H: ``top + (bottom - top) * y_lerp``.
    """
    dt = x.dtype
    ylo, yhi, ylerp = bilinear_weights(x.shape[1], size[0])
    xlo, xhi, xlerp = bilinear_weights(x.shape[2], size[1])
    xlerp = xlerp.astype(dt)[None, None, :, None]
    ylerp = ylerp.astype(dt)[None, :, None, None]
    rows_lo, rows_hi = x[:, ylo], x[:, yhi]
    top = rows_lo[:, :, xlo] + (rows_lo[:, :, xhi] - rows_lo[:, :, xlo]) * xlerp
    bottom = rows_hi[:, :, xlo] + (rows_hi[:, :, xhi] - rows_hi[:, :, xlo]) * xlerp
    return (top + (bottom - top) * ylerp).astype(dt, copy=False)
