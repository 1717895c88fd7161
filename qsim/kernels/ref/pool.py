"""Reference pools on Python ints and Fractions (see `qsim.kernels.pool`).

Window by window from the definition: the in-image elements of the window (padding is
not an element), their exact mean as a `Fraction` of real values, rounded once by
`round_ref` to the output grid and narrowed (``pool`` site, a `Tally`); the maximum of
the in-image codes for max pools. The "same" pads come from TF's formula, written here
again (not `resolve_pads`): ``total = max((ceil(in / s) - 1) * s + k - in, 0)``, the
smaller half on top/left.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from qsim.fixed.format import QFormat
from qsim.fixed.ref import narrow_one_ref, round_ref
from qsim.kernels.ref.common import Tally


def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    total = max((-(-size // s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _pads(pads, h, w, pool_size, strides):
    if pads == "same":
        return _same_pads(h, pool_size[0], strides[0]) + _same_pads(w, pool_size[1], strides[1])
    if pads == "valid":
        return 0, 0, 0, 0
    return tuple(int(p) for p in pads)


def _windows(x, pool_size, strides, pads):
    """Yield ((b, oy, ox, c), [in-image codes of that window]) in output order."""
    n, h, w, c = x.shape
    ph, pw = pool_size
    sh, sw = strides
    t, b_, l, r = _pads(pads, h, w, pool_size, strides)
    oh, ow = (h + t + b_ - ph) // sh + 1, (w + l + r - pw) // sw + 1
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                for ch in range(c):
                    vals = [int(x[b, oy * sh - t + i, ox * sw - l + j, ch])
                            for i in range(ph) for j in range(pw)
                            if 0 <= oy * sh - t + i < h and 0 <= ox * sw - l + j < w]
                    yield (b, oy, ox, ch), vals, (n, oh, ow, c)


def _mean_code(vals, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow, tally: Tally) -> int:
    mean = Fraction(sum(vals), len(vals) * 2**in_fmt.frac_bits)  # the exact real mean
    r = round_ref(mean * 2**out_fmt.frac_bits, rounding)
    tally.see(r, out_fmt.min_code, out_fmt.max_code)
    return narrow_one_ref(r, out_fmt.word_bits, out_fmt.signed, overflow)


def avg_pool_ref(x, pool_size, strides, pads, *, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow):
    """Codes and the ``pool`` `Tally` of `qsim.kernels.pool.avg_pool`."""
    x = np.asarray(x)
    tally = Tally()
    out = None
    for idx, vals, shape in _windows(x, pool_size, strides, pads):
        out = np.zeros(shape, dtype=np.int64) if out is None else out
        out[idx] = _mean_code(vals, in_fmt, out_fmt, rounding, overflow, tally)
    return out, tally


def max_pool_ref(x, pool_size, strides, pads):
    """Codes of `qsim.kernels.pool.max_pool`: the largest in-image code of each window."""
    x = np.asarray(x)
    out = None
    for idx, vals, shape in _windows(x, pool_size, strides, pads):
        out = np.zeros(shape, dtype=np.int64) if out is None else out
        out[idx] = max(vals)
    return out


def global_avg_pool_ref(x, keepdims: bool, *, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow):
    x = np.asarray(x)
    n, h, w, c = x.shape
    tally = Tally()
    out = np.zeros((n, c), dtype=np.int64)
    for b in range(n):
        for ch in range(c):
            vals = [int(x[b, i, j, ch]) for i in range(h) for j in range(w)]
            out[b, ch] = _mean_code(vals, in_fmt, out_fmt, rounding, overflow, tally)
    return (out.reshape(n, 1, 1, c) if keepdims else out), tally


def global_max_pool_ref(x, keepdims: bool):
    x = np.asarray(x)
    n, h, w, c = x.shape
    out = np.array([[max(int(x[b, i, j, ch]) for i in range(h) for j in range(w)) for ch in range(c)]
                    for b in range(n)], dtype=np.int64).reshape(n, c)
    return out.reshape(n, 1, 1, c) if keepdims else out
