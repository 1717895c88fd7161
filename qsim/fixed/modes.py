"""Rounding and overflow modes, each with its integer formula.

All formulas act on exact integers (Python ints or int64 arrays). Dropping ``s`` low bits
of an integer ``x`` (i.e. computing ``x / 2**s`` as an integer) under each rounding mode:

==============  ==============================================================
``floor``        ``x >> s`` (arithmetic shift right; rounds toward -inf)
``toward_zero``  ``sign(x) * (|x| >> s)`` (truncation, C integer division)
``half_up``      ``(x + 2**(s-1)) >> s`` (ties toward +inf)
``half_even``    nearest; ties to the even result (IEEE default, "convergent")
``half_away``    ``sign(x) * ((|x| + 2**(s-1)) >> s)`` (ties away from zero, C ``round``)
==============  ==============================================================

Overflow modes for narrowing an integer to ``bits`` (two's complement, or unsigned):

============  ================================================================
``saturate``   clamp to ``[min_code, max_code]``
``wrap``       keep the low ``bits`` bits (modulo ``2**bits``), sign-extended
============  ================================================================

Foreign names (hls4ml/Vivado ``AP_RND``..., numpy/Python conventions) map onto these in
`FOREIGN_NAMES`, the one table tests use.
"""
from __future__ import annotations

from enum import Enum

import numpy as np

from qsim.errors import FormatError


class _Mode(str, Enum):
    """A mode named by a string; `parse` also accepts the foreign names of `FOREIGN_NAMES`."""

    @classmethod
    def parse(cls, value):
        """The member named `value` (a member, our name, or a foreign name such as ``AP_RND``)."""
        if isinstance(value, cls):
            return value
        key = str(value).strip()
        key = FOREIGN_NAMES.get(key, key)
        try:
            return cls(key)
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise FormatError(
                f"unknown {cls.__name__.lower()} mode {value!r}; expected one of {names}"
            ) from None


class Rounding(_Mode):
    """How low-order bits are dropped."""

    FLOOR = "floor"
    """Round toward -inf: arithmetic shift right."""
    TOWARD_ZERO = "toward_zero"
    """Round toward zero: truncate the magnitude."""
    HALF_UP = "half_up"
    """Round to nearest, ties toward +inf: add half an LSB, then floor."""
    HALF_EVEN = "half_even"
    """Round to nearest, ties to even."""
    HALF_AWAY = "half_away"
    """Round to nearest, ties away from zero."""


class Overflow(_Mode):
    """What happens to a value outside a format's range."""

    SATURATE = "saturate"
    """Clamp to the nearest representable code."""
    WRAP = "wrap"
    """Keep the low word bits (two's complement modulo 2**word_bits)."""


# Other tools' names for our modes. hls4ml/Vivado HLS: ap_fixed<W,I,Q,O>.
FOREIGN_NAMES: dict[str, str] = {
    "AP_TRN": "floor",
    "AP_TRN_ZERO": "toward_zero",
    "AP_RND": "half_up",
    "AP_RND_CONV": "half_even",
    "AP_RND_INF": "half_away",
    "AP_SAT": "saturate",
    "AP_WRAP": "wrap",
    "trunc": "toward_zero",
    "round": "half_away",
    "rint": "half_even",
    "nearest_even": "half_even",
    "clip": "saturate",
    "clamp": "saturate",
}


def shift_round(x: np.ndarray, shift: int, rounding: Rounding) -> np.ndarray:
    """Exact ``x / 2**shift`` rounded per `rounding`, for int64 arrays.

    Valid for every int64 ``x`` and ``0 < shift <= 63`` (no intermediate can overflow:
    the rounding increment is decided from the remainder, never by adding half an LSB).
    ``shift <= 0`` multiplies by ``2**-shift``; the caller guarantees that fits int64
    (`qsim.fixed.cast.rescale` checks and falls back to Python ints). ``shift >= 64`` is
    delegated to `shift_round_int` element by element.
    """
    x = np.asarray(x, dtype=np.int64)
    rounding = Rounding.parse(rounding)
    if shift <= 0:
        return x << np.int64(-shift)
    if shift >= 64:
        return np.vectorize(lambda v: shift_round_int(int(v), shift, rounding), otypes=[np.int64])(x)
    s = np.int64(shift)
    q = x >> s  # floor
    if rounding is Rounding.FLOOR:
        return q
    rem = x & ((np.int64(1) << s) - np.int64(1)) if shift < 63 else x - (q << s)  # 0 <= rem < 2**s
    half = np.int64(1) << (s - np.int64(1))
    if rounding is Rounding.TOWARD_ZERO:
        up = (x < 0) & (rem != 0)
    elif rounding is Rounding.HALF_UP:
        up = rem >= half
    elif rounding is Rounding.HALF_AWAY:
        up = (rem > half) | ((rem == half) & (x >= 0))
    elif rounding is Rounding.HALF_EVEN:
        up = (rem > half) | ((rem == half) & ((q & 1) == 1))
    else:  # pragma: no cover - Rounding.parse rejects unknown names
        raise FormatError(f"unknown rounding mode {rounding!r}")
    return q + up.astype(np.int64)


def shift_round_int(x: int, shift: int, rounding: Rounding) -> int:
    """Python-int twin of `shift_round`, any magnitude (used by slow references)."""
    rounding = Rounding.parse(rounding)
    if shift <= 0:
        return x << -shift
    if rounding is Rounding.FLOOR:
        return x >> shift
    half = 1 << (shift - 1)
    if rounding is Rounding.HALF_UP:
        return (x + half) >> shift
    mag = abs(x)
    if rounding is Rounding.TOWARD_ZERO:
        r = mag >> shift
        return -r if x < 0 else r
    if rounding is Rounding.HALF_AWAY:
        r = (mag + half) >> shift
        return -r if x < 0 else r
    if rounding is Rounding.HALF_EVEN:
        q = x >> shift
        rem = x - (q << shift)
        return q + (1 if rem > half or (rem == half and q & 1) else 0)
    raise FormatError(f"unknown rounding mode {rounding!r}")
