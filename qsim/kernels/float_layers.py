"""Float kernels of the dense, pooling, reshaping and activation layers (NumPy, batch first).

Contract (as `qsim.kernels.float_ops`): arrays of one float dtype in and out (float32 or
float64, the caller's), weights cast to it, nothing rounded but by the dtype. Semantics
follow Keras 3 / TensorFlow where the definition is discrete:

* `dense`: ``x @ kernel + bias`` over the last axis, one GEMM per sample (so the batch
  size cannot change a bit of any sample's result).
* `avg_pool`: the mean over a window's in-image elements (TF's ``padding="same"``
  divides an edge window by its in-image count, not by ph*pw); `max_pool`: padded
  positions are -inf (never the maximum).
* `global_avg_pool` / `global_max_pool`: over H and W, keepdims as Keras.
* `softmax`: ``exp(x - max) / sum(exp(x - max))`` along one axis (overflow-free).
* `hard_sigmoid`: ``clip(slope * x + offset, 0, 1)``; `hard_swish`: ``x * relu6(x + 3) / 6``;
  `swish`: ``x * sigmoid(x)``.
* `reshape`: row-major (C order) on the non-batch axes, as Keras Reshape/Flatten on NHWC.
"""
from __future__ import annotations

import numpy as np

from qsim.graph.ir import resolve_pads
from qsim.kernels.blas import gemm
from qsim.kernels.float_ops import pad, sigmoid


def dense(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Keras Dense: x (N, ..., Cin), kernel (Cin, Cout) → (N, ..., Cout)."""
    kernel = kernel.astype(x.dtype, copy=False)
    cin, cout = kernel.shape
    out = np.empty(x.shape[:-1] + (cout,), dtype=x.dtype)
    for b in range(x.shape[0]):  # one GEMM per sample: batch-size invariant bits
        rows = np.ascontiguousarray(x[b]).reshape(-1, cin)
        out[b] = gemm(rows, kernel).reshape(out.shape[1:])
    if bias is not None:
        out += bias.astype(x.dtype, copy=False)
    return out


def rescale(x: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``x * scale + offset`` per channel (last axis): Keras Rescaling / Normalization."""
    return x * scale.astype(x.dtype, copy=False) + offset.astype(x.dtype, copy=False)


def _windows(xp: np.ndarray, ph: int, pw: int, strides, out_hw):
    """Yield the strided view of the padded input that each window tap reads."""
    sh, sw = strides
    oh, ow = out_hw
    for i in range(ph):
        for j in range(pw):
            yield xp[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :]


def _pool_geometry(x: np.ndarray, pool_size, strides, pads):
    ph, pw = pool_size
    t, b, l, r = resolve_pads(pads, x.shape[1:3], (ph, pw), tuple(strides))
    oh = (x.shape[1] + t + b - ph) // strides[0] + 1
    ow = (x.shape[2] + l + r - pw) // strides[1] + 1
    return (t, b, l, r), (oh, ow)


def avg_pool(x: np.ndarray, pool_size, strides, pads) -> np.ndarray:
    """AveragePooling2D: window sum of in-image elements / their count (see module doc)."""
    pads4, out_hw = _pool_geometry(x, pool_size, strides, pads)
    total = np.zeros((x.shape[0],) + out_hw + (x.shape[3],), dtype=x.dtype)
    for view in _windows(pad(x, pads4), *pool_size, strides, out_hw):
        total += view
    ones = pad(np.ones((1,) + x.shape[1:3] + (1,), dtype=x.dtype), pads4)
    count = sum(view for view in _windows(ones, *pool_size, strides, out_hw))
    return total / count


def max_pool(x: np.ndarray, pool_size, strides, pads) -> np.ndarray:
    """MaxPooling2D: window maximum; padded positions are -inf (never chosen)."""
    (t, b, l, r), out_hw = _pool_geometry(x, pool_size, strides, pads)
    n, h, w, c = x.shape
    xp = np.full((n, h + t + b, w + l + r, c), -np.inf, dtype=x.dtype)
    xp[:, t:t + h, l:l + w, :] = x
    out = None
    for view in _windows(xp, *pool_size, strides, out_hw):
        out = view.copy() if out is None else np.maximum(out, view, out=out)
    return out


def global_avg_pool(x: np.ndarray, keepdims: bool) -> np.ndarray:
    return np.mean(x, axis=(1, 2), keepdims=keepdims, dtype=x.dtype)


def global_max_pool(x: np.ndarray, keepdims: bool) -> np.ndarray:
    return np.max(x, axis=(1, 2), keepdims=keepdims)


def reshape(x: np.ndarray, shape) -> np.ndarray:
    """Row-major reshape of the non-batch axes (one -1 allowed)."""
    return np.ascontiguousarray(x).reshape((x.shape[0],) + tuple(int(d) for d in shape))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return (e / np.sum(e, axis=axis, keepdims=True)).astype(x.dtype, copy=False)


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


def hard_sigmoid(x: np.ndarray, slope: float = 1 / 6, offset: float = 0.5) -> np.ndarray:
    dt = x.dtype.type
    return np.clip(x * dt(slope) + dt(offset), dt(0), dt(1))


def hard_swish(x: np.ndarray) -> np.ndarray:
    """Keras hard_silu: x * relu6(x + 3) / 6."""
    dt = x.dtype.type
    return x * (np.clip(x + dt(3), dt(0), dt(6)) / dt(6))


def swish(x: np.ndarray) -> np.ndarray:
    """Keras silu: x * sigmoid(x)."""
    return x * sigmoid(x)


def multiply(*xs: np.ndarray) -> np.ndarray:
    """Elementwise product; a size-1 axis broadcasts (squeeze-and-excitation)."""
    out = xs[0]
    for other in xs[1:]:
        out = out * other
    return out
