"""float32 rounded to binary16 (IEEE 754 half, round to nearest even), kept as float32, in one
compiled pass that also counts overflow.

Contract: for every finite float32 ``x``, `round_half` gives the float32 value of
``np.float16(x)`` bit for bit (tests/executors/test_half.py: every float32 whose rounding is
decided at a binary16 tie, its neighbours, and a stride through all bit patterns):

* ``|x| >= 2**-14`` (binary16 normals): the float32 significand rounded to 10 bits, ties
  to even, by integer arithmetic on the bits; a result of 2**16 or more is infinity
  (binary16's largest finite value is 65504, so 65520 and above overflow);
* ``|x| < 2**-14`` (binary16 subnormals and zero): ``rint(|x| * 2**24) * 2**-24`` (both
  scalings exact in float32), the sign kept, so -1e-9 gives -0.0 as NumPy does;
* infinities stay; NaN is not handled here (the caller takes NumPy's path: its NaN payload
  rule depends on the CPU's conversion instructions).

Why: NumPy's float32 -> float16 -> float32 casts and the separate counting passes cost
~10 ns per element; this pass ~1.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

_CHUNK = 1 << 16


@njit(cache=True, parallel=True)
def _round_half(x, bits, out, out_bits, stats):
    """`out` (float32) and `out_bits` (uint32) view one buffer, as `x` and `bits` do;
    stats[chunk] = (overflow events, NaNs, max |x| bits over non-NaN)."""
    n = bits.size
    nchunk = stats.shape[0]
    for c in prange(nchunk):
        events = 0
        nans = 0
        peak = np.uint32(0)
        for i in range(c * n // nchunk, (c + 1) * n // nchunk):
            b = bits[i]
            sign = b & np.uint32(0x80000000)
            a = b & np.uint32(0x7FFFFFFF)
            if a > np.uint32(0x7F800000):  # NaN: left to the caller
                nans += 1
                out_bits[i] = b
                continue
            peak = max(peak, a)
            if a >= np.uint32(0x7F800000):  # +-inf
                out_bits[i] = b
            elif a >= np.uint32(0x38800000):  # 2**-14 and above: binary16 normals
                r = (a + np.uint32(0xFFF) + ((a >> np.uint32(13)) & np.uint32(1))) & np.uint32(0xFFFFE000)
                if r >= np.uint32(0x47800000):  # 2**16 after rounding: binary16 overflow
                    events += 1
                    r = np.uint32(0x7F800000)
                out_bits[i] = sign | r
            else:  # binary16 subnormals: multiples of 2**-24, ties to even
                v = np.rint(abs(x[i]) * np.float32(16777216.0)) * np.float32(5.9604645e-08)
                out[i] = -v if sign else v
        stats[c, 0] = events
        stats[c, 1] = nans
        stats[c, 2] = peak


def round_half(x: np.ndarray) -> tuple[np.ndarray, int, int, float]:
    """(float32 values of ``x.astype(float16)``, overflow events, NaN count, max |x| over the
    non-NaN values as a float) for a float32 array `x`; values at NaN positions are not
    defined (the caller rounds arrays with NaN through NumPy)."""
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    out = np.empty_like(flat)
    nchunk = max(1, min(64, flat.size // _CHUNK))
    stats = np.zeros((nchunk, 3), np.int64)
    _round_half(flat, flat.view(np.uint32), out, out.view(np.uint32), stats)
    peak = float(np.uint32(stats[:, 2].max()).view(np.float32)) if flat.size else 0.0
    return out.reshape(np.shape(x)), int(stats[:, 0].sum()), int(stats[:, 1].sum()), peak
