"""TFLite's fixed-point requantization arithmetic, vectorised on int64 NumPy arrays.

Contract (TFLite ``kernels/internal/common.{h,cc}``, ``quantization_util.cc``, gemmlowp
``fixedpoint.h``; see ../shared/tflite-int8.md §1-2):

* `quantize_multiplier(m)`: a real multiplier m > 0 becomes ``(q, shift)`` with
  ``m ~= q * 2**(shift - 31)``, q in [2^30, 2^31): ``frexp``, then ``round(f * 2^31)``
  half away from zero; q == 2^31 is halved (shift + 1); shift < -31 flushes to (0, 0).
  The single-rounding build also saturates shift > 30 to (2^31 - 1, 30).
* `multiply_by_quantized_multiplier(x, q, shift, single_rounding)`: x is an int32 value.
  Double rounding (the TF pip wheel): ``RDBPOT(SRDHM(x * 2^max(shift,0), q), max(-shift,0))``,
  two roundings: SRDHM ties toward +inf, RDBPOT ties away from zero. Single rounding (``TFLITE_SINGLE_ROUNDING``):
  ``(x*q + 2^(30-shift)) >> (31-shift)``, one rounding, ties toward +inf. The choice is a
  run-time argument here, never a build flag or a global.
* Every division is C division (truncates toward zero): `c_div`.

All functions take int64 arrays (values within int32 unless stated) and return int64
arrays; products of two int32 fit in int64 exactly, so no intermediate is rounded.
The slow Python-int twins are in `qsim.tflite.ref`.

>>> quantize_multiplier(0.5)
(1073741824, 0)
>>> int(multiply_by_quantized_multiplier(np.int64(3), 1073741824, 0, single_rounding=False))  # 3 * 0.5 = 1.5 -> 2
2
>>> int(multiply_by_quantized_multiplier(np.int64(-3), 1073741824, 0, single_rounding=False))  # SRDHM tie: up
-1
>>> q, s = quantize_multiplier(0.25)  # 2^30, shift -1: the tie now falls in RDBPOT
>>> int(multiply_by_quantized_multiplier(np.int64(-6), q, s, single_rounding=False))  # RDBPOT tie: away
-2
>>> int(multiply_by_quantized_multiplier(np.int64(-6), q, s, single_rounding=True))  # single: up
-1
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def tflite_round(x: float) -> int:
    """``TfLiteRound`` / ``std::round`` of a double: nearest integer, halves away from zero."""
    r = math.floor(abs(x) + 0.5)
    return int(r if x >= 0 else -r)


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Vectorised ``std::round`` (halves away from zero) of a float array, as int64."""
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def quantize_multiplier(m: float, single_rounding: bool = False) -> tuple[int, int]:
    """``QuantizeMultiplier``: real multiplier -> (int32 Q0.31 mantissa, power-of-two shift)."""
    m = float(m)
    if m == 0.0:
        return 0, 0
    if not math.isfinite(m) or m < 0:
        raise ValueError(f"multiplier {m!r} is not a finite non-negative number")
    f, shift = math.frexp(m)
    q = tflite_round(f * 2.0**31)
    if q == 2**31:
        q //= 2
        shift += 1
    if shift < -31:
        q, shift = 0, 0
    if single_rounding and shift > 30:
        q, shift = 2**31 - 1, 30
    return int(q), int(shift)


def round_multiplier_bits(q: int, shift: int, bits: int) -> tuple[int, int]:
    """What-if: keep only `bits` signed bits of the Q0.31 mantissa (round half away from zero).

    ``bits = 32`` is the identity. The result is still expressed on 31 fraction bits, so
    every kernel uses it unchanged; a mantissa that rounds up to 1.0 is renormalised.
    """
    if not 2 <= bits <= 32:
        raise ValueError(f"multiplier_bits must be in [2, 32], got {bits}")
    drop = 32 - bits
    if drop == 0 or q == 0:
        return q, shift
    qn = (q + (1 << (drop - 1))) >> drop  # q > 0: add half, floor = half away from zero
    if qn >= 1 << (bits - 1):
        qn >>= 1
        shift += 1
    return int(qn << drop), int(shift)


def c_div(a: np.ndarray, b) -> np.ndarray:
    """C integer division (truncates toward zero) of int64 arrays; b > 0."""
    a = np.asarray(a, dtype=np.int64)
    q = np.abs(a) // b
    return np.where(a < 0, -q, q)


def srdhm(a: np.ndarray, b) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul``: a*b / 2^31 to nearest, ties toward +inf.

    Positive ties round up (away from zero); negative ties round toward zero, because the
    negative nudge is 1 - 2^30 and the division truncates: SRDHM(-1, 2^30) = 0.

    The one overflow, a == b == INT32_MIN, gives INT32_MAX.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    res = c_div(ab + nudge, np.int64(1 << 31))
    return np.where((a == INT32_MIN) & (b == INT32_MIN), np.int64(INT32_MAX), res)


def rounding_divide_by_pot(x: np.ndarray, exponent) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: x / 2^exponent, ties away from zero (exponent >= 0)."""
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values to int32 (what ``int32 * int32`` gives in C)."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & ((1 << 32) - 1)) - (1 << 31)


def multiply_by_quantized_multiplier(x, q, shift, *, single_rounding: bool) -> np.ndarray:
    """``MultiplyByQuantizedMultiplier(x, q, shift)``; q and shift may be per-channel arrays."""
    x = np.asarray(x, dtype=np.int64)
    q = np.asarray(q, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if single_rounding:
        total = 31 - shift
        return (x * q + (np.int64(1) << (total - 1))) >> total
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rounding_divide_by_pot(srdhm(wrap_int32(x << left), q), right)


def saturating_rounding_multiply_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent>`` on int32 raw values."""
    x = np.asarray(x, dtype=np.int64)
    if exponent > 0:
        return np.clip(x << exponent, INT32_MIN, INT32_MAX)
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    return x
