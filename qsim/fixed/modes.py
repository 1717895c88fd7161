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

The one rule every fast path uses: write ``v = q + rem / 2**s`` with ``q = floor(v)`` and
``0 <= rem < 2**s`` (for a float, ``s = 1`` and ``rem`` its exact fractional part against
``half = 0.5``); then ``round(v) = q + round_up(rem, half, v < 0, q odd, mode.code)``.
`round_up` is plain operators, so the same function serves Python ints, NumPy arrays and
(compiled by `qsim.fixed._numba` and `qsim.kernels.tail`) Numba kernels;
`rounding_offsets` is its branch-free form for the compiled tails (tested equal on every
mode and tie). The independent oracle, written from the definitions, is `qsim.fixed.ref`.
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

    @property
    def code(self) -> int:
        """The small integer compiled kernels and `round_up` branch on."""
        return _CODES[self]


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


_CODES = {Rounding.FLOOR: 0, Rounding.TOWARD_ZERO: 1, Rounding.HALF_UP: 2, Rounding.HALF_EVEN: 3,
          Rounding.HALF_AWAY: 4}


def round_up(rem, half, negative, odd, mode: int):
    """Whether ``floor(v)`` goes up by one under rounding ``mode`` (a `Rounding.code`).

    ``rem``: the dropped part, ``0 <= rem < 2 * half``; ``negative``: ``v < 0``; ``odd``:
    ``floor(v)`` is odd. Works element-wise on NumPy arrays as on scalars (bool results).

    >>> [bool(round_up(r, 2, False, False, Rounding.HALF_EVEN.code)) for r in (1, 2, 3)]
    [False, False, True]
    """
    if mode == 0:  # floor
        return rem != rem  # all False, in the operand's shape
    if mode == 1:  # toward zero: negatives with a dropped part go up
        return negative & (rem != 0)
    if mode == 2:  # half up
        return rem >= half
    if mode == 3:  # half even
        return (rem > half) | ((rem == half) & odd)
    return (rem > half) | ((rem == half) & (negative ^ True))  # half away


def rounding_offsets(shift: int, rounding: Rounding) -> tuple[int, int, int]:
    """(base, negative, parity) with ``round(v / 2**s) = (v + base + neg*[v<0] + par*bit_s(v)) >> s``.

    The branch-free form of `round_up` for compiled tails (half_even: ``+ half - 1``, plus 1
    when the kept part ``v >> s`` is odd; toward_zero/half_away: one less for negatives).
    """
    if shift <= 0:
        return 0, 0, 0
    half = 1 << (shift - 1)
    return {
        Rounding.FLOOR: (0, 0, 0),
        Rounding.HALF_UP: (half, 0, 0),
        Rounding.TOWARD_ZERO: (0, (1 << shift) - 1, 0),
        Rounding.HALF_AWAY: (half, -1, 0),
        Rounding.HALF_EVEN: (half - 1, 0, 1),
    }[Rounding.parse(rounding)]


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
    return q + round_up(rem, half, x < 0, (q & 1) == 1, rounding.code).astype(np.int64)


def shift_round_int(x: int, shift: int, rounding: Rounding) -> int:
    """Python-int twin of `shift_round`, any magnitude (used by slow references)."""
    rounding = Rounding.parse(rounding)
    if shift <= 0:
        return x << -shift
    q = x >> shift
    rem = x - (q << shift)
    return q + int(bool(round_up(rem, 1 << (shift - 1), x < 0, bool(q & 1), rounding.code)))
