"""Integer bilinear upsampling by power-of-two factors, exact before one final rounding.

Sampling positions are Keras' / ``tf.image.resize(..., "bilinear")``'s half-pixel rule
with edge clamp: output index ``o`` reads input position ``in = (o + 0.5) / f - 0.5``,
``lower = max(floor(in), 0)``, ``upper = min(ceil(in), n - 1)``, ``lerp = in - floor(in)``,
``y = x[lower] * (1 - lerp) + x[upper] * lerp`` per axis (rows, then columns).

For ``f = 2**k`` every ``lerp`` is a multiple of ``1 / (2f)`` (for 2x: 0.25 or 0.75), so the
interpolated value is ``sum(wy * wx * x) / ((2 fh) (2 fw))`` with integer weights: an exact
integer with ``in_frac + log2(2 fh) + log2(2 fw)`` fraction bits (for 2x: 4 extra bits).
One `qsim.fixed.rescale` rounds it to the output format (site ``upsample``, the plan's
rounding and overflow). Other factors are not dyadic and raise `PlanError`.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from qsim.errors import InputError, PlanError
from qsim.fixed.cast import rescale
from qsim.fixed.counters import OverflowCounter
from qsim.fixed.format import QFormat
from qsim.fixed.limits import INT64_SAFE


def axis_taps(n_in: int, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per output index: (lower index, upper index, lower weight, upper weight), weights in 1/(2f).

    >>> [t.tolist() for t in axis_taps(2, 2)]
    [[0, 0, 0, 1], [0, 1, 1, 1], [1, 3, 1, 3], [3, 1, 3, 1]]
    """
    o = np.arange(n_in * factor, dtype=np.int64)
    num = 2 * o + 1 - factor  # in = num / (2 f), exactly
    den = 2 * factor
    fl = num // den  # floor
    lerp = num - fl * den  # in [0, den)
    lower = np.clip(fl, 0, n_in - 1)
    upper = np.clip(fl + 1, 0, n_in - 1)
    return lower, upper, den - lerp, lerp


@njit(cache=True, parallel=True)
def _bilinear(x, ylo, yhi, wylo, wyhi, xlo, xhi, wxlo, wxhi, out):
    n, h, w, c = x.shape
    ho = ylo.size
    wo = xlo.size
    for r in prange(n * ho):
        b = r // ho
        oy = r % ho
        for ox in range(wo):
            for ch in range(c):
                out[b, oy, ox, ch] = (
                    wylo[oy] * (wxlo[ox] * x[b, ylo[oy], xlo[ox], ch] + wxhi[ox] * x[b, ylo[oy], xhi[ox], ch])
                    + wyhi[oy] * (wxlo[ox] * x[b, yhi[oy], xlo[ox], ch] + wxhi[ox] * x[b, yhi[oy], xhi[ox], ch])
                )


def _log2_exact(f: int, what: str) -> int:
    if f < 1 or f & (f - 1):
        raise PlanError(
            f"bilinear upsampling by {what}={f} is not exact in fixed point; supported factors are powers of two"
        )
    return f.bit_length() - 1


def upsample_bilinear(x, size, *, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow,
                      counter: OverflowCounter | None = None) -> np.ndarray:
    """Bilinear upsampling of NHWC codes by ``size = (fh, fw)`` (powers of two); see module doc."""
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 4:
        raise InputError(f"upsample input must be NHWC, got shape {x.shape}")
    fh, fw = (int(s) for s in size)
    extra = _log2_exact(fh, "height factor") + 1 + _log2_exact(fw, "width factor") + 1
    if max(abs(in_fmt.min_code), in_fmt.max_code) << extra >= INT64_SAFE:
        raise PlanError(f"bilinear upsampling of {in_fmt} needs {in_fmt.word_bits + extra} bits, beyond int64")
    ylo, yhi, wylo, wyhi = axis_taps(x.shape[1], fh)
    xlo, xhi, wxlo, wxhi = axis_taps(x.shape[2], fw)
    num = np.empty((x.shape[0], ylo.size, xlo.size, x.shape[3]), dtype=np.int64)
    _bilinear(np.ascontiguousarray(x), ylo, yhi, wylo, wyhi, xlo, xhi, wxlo, wxhi, num)
    return rescale(num, in_fmt.frac_bits + extra, out_fmt, rounding=rounding, overflow=overflow, counter=counter)
