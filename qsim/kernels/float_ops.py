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


def _prepare(x, kernel, strides, pads, dilation):
    kh, kw = kernel.shape[:2]
    t, b, l, r = resolve_pads(pads, x.shape[1:3], (kh, kw), strides, dilation)
    xp = pad(x, (t, b, l, r))
    oh = (xp.shape[1] - ((kh - 1) * dilation[0] + 1)) // strides[0] + 1
    ow = (xp.shape[2] - ((kw - 1) * dilation[1] + 1)) // strides[1] + 1
    if oh < 1 or ow < 1:
        raise InputError(f"input {x.shape[1]}x{x.shape[2]} (padded {xp.shape[1]}x{xp.shape[2]}) "
                         f"is smaller than the {kh}x{kw} kernel")
    return xp, oh, ow


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None,
           strides=(1, 1), pads="same", dilation=(1, 1)) -> np.ndarray:
    """Keras Conv2D: x (N,H,W,Cin), kernel (KH,KW,Cin,Cout) → (N,OH,OW,Cout)."""
    kernel = kernel.astype(x.dtype, copy=False)
    kh, kw, cin, cout = kernel.shape
    xp, oh, ow = _prepare(x, kernel, strides, pads, dilation)
    n = x.shape[0]
    w2d = kernel.reshape(kh * kw * cin, cout)
    out = np.empty((n, oh * ow, cout), dtype=x.dtype)
    # One GEMM per image: the same BLAS call whatever the batch size, so batching
    # cannot change a single bit of any image's result.
    for b in range(n):
        if kh == 1 and kw == 1:
            view = next(_taps(xp[b:b + 1], 1, 1, strides, dilation, (oh, ow)))[2]
            cols = np.ascontiguousarray(view).reshape(oh * ow, cin)
        else:
            cols6 = np.empty((1, oh, ow, kh, kw, cin), dtype=x.dtype)
            for i, j, view in _taps(xp[b:b + 1], kh, kw, strides, dilation, (oh, ow)):
                cols6[:, :, :, i, j, :] = view
            cols = cols6.reshape(oh * ow, kh * kw * cin)
        gemm(cols, w2d, out=out[b])
    out = out.reshape(n, oh, ow, cout)
    if bias is not None:
        out += bias.astype(x.dtype, copy=False)
    return out


@njit(cache=True, parallel=True)
def _depthwise_rows(xp, kernel, sh, sw, dh, dw, oh, ow, out):
    """out[b, oy, ox, c*mult+m] = sum over taps (row-major) of xp[...] * kernel[ky, kx, c, m].

    `xp` is padded; one output row per task, each output summed by one thread in tap
    order (the order of the tap-by-tap NumPy formulation), so thread count and batch size
    change no bit.
    """
    n = xp.shape[0]
    kh, kw, c, mult = kernel.shape
    for r in prange(n * oh):
        b = r // oh
        oy = r % oh
        for ox in range(ow):
            acc = out[b, oy, ox]  # (c * mult,), zeroed by the caller
            for ky in range(kh):
                xrow = xp[b, oy * sh + ky * dh]
                for kx in range(kw):
                    xs = xrow[ox * sw + kx * dw]
                    ws = kernel[ky, kx]
                    if mult == 1:
                        for ci in range(c):
                            acc[ci] += xs[ci] * ws[ci, 0]
                    else:
                        for ci in range(c):
                            for m in range(mult):
                                acc[ci * mult + m] += xs[ci] * ws[ci, m]


def depthwise_conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None,
                     strides=(1, 1), pads="same", dilation=(1, 1)) -> np.ndarray:
    """Keras DepthwiseConv2D: kernel (KH,KW,C,mult) → (N,OH,OW,C*mult).

    Compiled (`_depthwise_rows`): taps in row-major order, then the bias.
    """
    kernel = np.ascontiguousarray(kernel.astype(x.dtype, copy=False))
    kh, kw, c, mult = kernel.shape
    xp, oh, ow = _prepare(x, kernel, strides, pads, dilation)
    out = np.zeros((x.shape[0], oh, ow, c * mult), dtype=x.dtype)
    _depthwise_rows(np.ascontiguousarray(xp), kernel, int(strides[0]), int(strides[1]), int(dilation[0]),
                    int(dilation[1]), oh, ow, out)
    if bias is not None:
        out += bias.astype(x.dtype, copy=False)
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
