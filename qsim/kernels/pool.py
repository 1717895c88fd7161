"""Integer pooling: average pools (exact sum, one rounded division) and max pools (exact).

Contract
--------
* Inputs: codes ``x`` (N, H, W, C) of ``in_fmt`` (int64, or integer-valued float64 as the
  MAC kernels hand them on). Windows: ``pool_size`` (ph, pw), ``strides`` (sh, sw),
  ``pads`` (top, bottom, left, right) or ``"same"``/``"valid"`` (TF's rule,
  `qsim.graph.ir.resolve_pads`). Every window must hold at least one in-image element
  (always true for "same" and "valid"); otherwise `InputError`.
* ``avg_pool`` / ``global_avg_pool``: the window's in-image codes are summed exactly
  (int64 while ``count * max|x| < 2**62``, Python ints beyond), and the mean is rounded
  ONCE to ``out_fmt`` (the node's ``act``) at site ``pool``::

      code = round(sum * 2**out_frac / (count * 2**in_frac))      # the plan's rounding mode

  computed as `qsim.fixed.divide.div_round` of ``sum << (out_frac - in_frac)`` by
  ``count`` (or of ``sum`` by ``count << (in_frac - out_frac)``): exact for every rounding
  mode, ties included. ``count`` is the number of **in-image** elements of the window:
  a "same" edge window divides by fewer than ``ph * pw`` (Keras/TF AveragePooling2D);
  the global pool divides by ``H * W``. The rounded code is then narrowed to ``out_fmt``
  with the ``pool`` site's overflow mode; the counter sees it before narrowing (a mean
  cannot leave the input's range, so it overflows only when ``out_fmt`` is narrower).
* ``max_pool`` / ``global_max_pool``: pass-through ops: the maximum input code of the
  window, in ``in_fmt``; nothing rounds or overflows; padded positions never win (they
  are not candidates, as TF's -inf padding).
* ``global_*`` take ``keepdims``: (N, C), or (N, 1, 1, C).
* Element-wise in the batch: results do not depend on batch size or threads.

The slow twins are in `qsim.kernels.ref.pool`.
"""
from __future__ import annotations

import numpy as np

from qsim.errors import InputError
from qsim.fixed.cast import narrow
from qsim.fixed.counters import OverflowCounter
from qsim.fixed.divide import div_round
from qsim.fixed.format import QFormat
from qsim.fixed.limits import INT64_SAFE
from qsim.fixed.modes import Overflow, Rounding
from qsim.graph.ir import resolve_pads


def _codes(x, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "if":
        raise InputError(f"{what} input codes must be integers, got dtype {x.dtype}")
    if x.ndim != 4:
        raise InputError(f"{what} input must be NHWC (4-D), got shape {x.shape}")
    return x.astype(np.int64, copy=False)  # integer-valued float64 (|code| < 2**53): exact


def _max_abs(x: np.ndarray) -> int:
    return 0 if x.size == 0 else max(abs(int(x.min())), abs(int(x.max())))


def window_geometry(shape, pool_size, strides, pads):
    """((top, bottom, left, right), (OH, OW)) of a pool over an NHWC `shape`; `InputError` if empty."""
    ph, pw = (int(v) for v in pool_size)
    sh, sw = (int(v) for v in strides)
    if min(ph, pw, sh, sw) < 1:
        raise InputError(f"pool size {pool_size} and strides {strides} must be >= 1")
    t, b, l, r = resolve_pads(pads, tuple(shape[1:3]), (ph, pw), (sh, sw))
    oh = (shape[1] + t + b - ph) // sh + 1
    ow = (shape[2] + l + r - pw) // sw + 1
    if oh <= 0 or ow <= 0:
        raise InputError(f"pool output would be empty: input {shape[1]}x{shape[2]}, pool {ph}x{pw}, "
                         f"pads {(t, b, l, r)}")
    return (t, b, l, r), (oh, ow)


def _taps(xp: np.ndarray, pool_size, strides, out_hw):
    """The strided view of the padded input each window tap reads."""
    (ph, pw), (sh, sw), (oh, ow) = pool_size, strides, out_hw
    for i in range(ph):
        for j in range(pw):
            yield xp[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :]


def window_counts(shape, pool_size, strides, pads) -> np.ndarray:
    """In-image elements of every window, (1, OH, OW, 1) int64 (`InputError` if one is 0)."""
    (t, b, l, r), out_hw = window_geometry(shape, pool_size, strides, pads)
    ones = np.pad(np.ones((1, shape[1], shape[2], 1), dtype=np.int64), ((0, 0), (t, b), (l, r), (0, 0)))
    counts = sum(_taps(ones, tuple(pool_size), tuple(strides), out_hw))
    if int(counts.min()) == 0:
        raise InputError(f"a pool window holds no input element (input {shape[1]}x{shape[2]}, pool "
                         f"{tuple(pool_size)}, strides {tuple(strides)}, pads {(t, b, l, r)})")
    return counts


def mean_codes(sums, counts, *, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow,
               counter: OverflowCounter | None = None) -> np.ndarray:
    """``round(sums / counts)`` from `in_fmt`'s grid to `out_fmt`'s, one rounding, then narrowed.

    `sums` are exact sums of `in_fmt` codes (int64, or Python ints in an object array) and
    `counts` (> 0) broadcast against them; the counter (site ``pool``) sees the rounded
    codes before narrowing.
    """
    rounding, overflow = Rounding.parse(rounding), Overflow.parse(overflow)
    sums = np.asarray(sums)
    counts = np.asarray(counts, dtype=np.int64)
    k = out_fmt.frac_bits - in_fmt.frac_bits
    if k >= 0:
        big = sums.dtype == object or (_max_abs(sums) << k) >= INT64_SAFE
        num = sums.astype(object) * (1 << k) if big else sums << np.int64(k)
        den = counts
    else:
        num = sums
        big = (int(counts.max()) << -k) >= INT64_SAFE
        den = counts.astype(object) * (1 << -k) if big else counts << np.int64(-k)
    rounded = div_round(num, den, rounding)
    return narrow(rounded, out_fmt.word_bits, out_fmt.signed, overflow=overflow, counter=counter)


def _padded(x: np.ndarray, pads4, value) -> np.ndarray:
    """`x` inside a border of `value` (for object arrays a Python int, so sums stay exact)."""
    t, b, l, r = pads4
    n, h, w, c = x.shape
    out = np.full((n, h + t + b, w + l + r, c), value, dtype=x.dtype)
    out[:, t:t + h, l:l + w, :] = x
    return out


def _window_sums(x: np.ndarray, pool_size, strides, pads4, out_hw) -> np.ndarray:
    if _max_abs(x) * int(pool_size[0]) * int(pool_size[1]) >= INT64_SAFE:
        x = x.astype(object)  # exact Python-int sums
    xp = _padded(x, pads4, 0)  # zeros add nothing; counts exclude them
    total = None
    for view in _taps(xp, tuple(pool_size), tuple(strides), out_hw):
        total = view.copy() if total is None else total + view
    return total


def avg_pool(x, pool_size, strides, pads, *, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow,
             counter: OverflowCounter | None = None) -> np.ndarray:
    """AveragePooling2D on codes: exact in-image window sum, one rounded division (module doc)."""
    x = _codes(x, "avg_pool")
    pads4, out_hw = window_geometry(x.shape, pool_size, strides, pads)
    counts = window_counts(x.shape, pool_size, strides, pads)
    sums = _window_sums(x, pool_size, strides, pads4, out_hw)
    return mean_codes(sums, counts, in_fmt=in_fmt, out_fmt=out_fmt, rounding=rounding, overflow=overflow,
                      counter=counter)


def global_avg_pool(x, keepdims: bool, *, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow,
                    counter: OverflowCounter | None = None) -> np.ndarray:
    """GlobalAveragePooling2D on codes: exact sum over H, W divided once by ``H * W``."""
    x = _codes(x, "global_avg_pool")
    if _max_abs(x) * x.shape[1] * x.shape[2] >= INT64_SAFE:
        x = x.astype(object)
    sums = x.sum(axis=(1, 2), keepdims=bool(keepdims))
    return mean_codes(sums, x.shape[1] * x.shape[2], in_fmt=in_fmt, out_fmt=out_fmt, rounding=rounding,
                      overflow=overflow, counter=counter)


def max_pool(x, pool_size, strides, pads) -> np.ndarray:
    """MaxPooling2D on codes: the largest in-image code of each window, same format."""
    x = _codes(x, "max_pool")
    pads4, out_hw = window_geometry(x.shape, pool_size, strides, pads)
    window_counts(x.shape, pool_size, strides, pads)  # every window has a candidate
    xp = _padded(x, pads4, np.iinfo(np.int64).min)  # <= every code: a padded tap never wins
    out = None
    for view in _taps(xp, tuple(pool_size), tuple(strides), out_hw):
        out = view.copy() if out is None else np.maximum(out, view, out=out)
    return out


def global_max_pool(x, keepdims: bool) -> np.ndarray:
    """GlobalMaxPooling2D on codes: the largest code over H, W, same format."""
    return _codes(x, "global_max_pool").max(axis=(1, 2), keepdims=bool(keepdims))


__all__ = ["avg_pool", "global_avg_pool", "max_pool", "global_max_pool", "mean_codes", "window_counts"]
