"""Exact rounding of a rational ``num / den`` to an integer, for every `Rounding` mode.

The one division of the integer pools (`qsim.kernels.pool`): a window sum divided by its
element count (times a power of two to change fraction bits) is rounded once, exactly.

Rule (the same `round_up` every shift uses, `qsim.fixed.modes`): with ``den > 0`` write
``num = q * den + rem`` with ``q = floor(num / den)`` and ``0 <= rem < den`` (Python's and
NumPy's floor division), then ``round(num / den) = q + round_up(2 * rem, den, num < 0,
q odd, mode)``: comparing ``2 * rem`` with ``den`` decides the ties exactly (a tie is
``2 * rem == den``, possible only for even ``den``), with no float and no half-LSB addition.

`div_round` works on int64 arrays (broadcasting ``num`` against ``den``) while every
``|num| < 2**62`` and ``0 < den < 2**62`` (then ``2 * rem`` and ``q * den`` stay in
int64); beyond that, or for Python ints / object arrays, it is done element by element on
Python ints (`div_round_int`). The independent oracle is `qsim.fixed.ref.div_round_ref`
(`fractions.Fraction` and the modes' definitions).

>>> div_round(np.array([5, -5, 6, -6, 7]), 4, Rounding.HALF_EVEN).tolist()   # 1.25 -1.25 1.5 -1.5 1.75
[1, -1, 2, -2, 2]
>>> div_round(np.array([6, -6]), 4, Rounding.HALF_AWAY).tolist(), div_round(np.array([-6]), 4, "toward_zero").tolist()
([2, -2], [-1])
"""
from __future__ import annotations

import numpy as np

from qsim.errors import QsimError
from qsim.fixed.limits import INT64_SAFE
from qsim.fixed.modes import Rounding, round_up


def div_round_int(num: int, den: int, rounding: "Rounding | str") -> int:
    """Python-int ``round(num / den)`` (``den > 0``), any magnitude."""
    rounding = Rounding.parse(rounding)
    if den <= 0:
        raise QsimError(f"div_round: the divisor must be > 0, got {den}")
    q, rem = divmod(num, den)  # floor division: 0 <= rem < den
    return q + int(bool(round_up(2 * rem, den, num < 0, bool(q & 1), rounding.code)))


def div_round(num, den, rounding: "Rounding | str") -> np.ndarray:
    """Exact ``round(num / den)`` per `rounding`, element-wise (see module doc).

    Args:
        num: integers (int64 array, or Python ints / an object array beyond int64).
        den: positive integers broadcastable against `num`.
        rounding: a `Rounding` mode.

    Returns:
        int64 array of the broadcast shape when every result fits int64, else an object
        array of Python ints (what `qsim.fixed.cast.narrow` takes).
    """
    rounding = Rounding.parse(rounding)
    num_a, den_a = np.asarray(num), np.asarray(den)
    if den_a.size and int(den_a.min()) <= 0:
        raise QsimError(f"div_round: the divisor must be > 0, got {int(den_a.min())}")
    small = (num_a.dtype.kind == "i" and den_a.dtype.kind == "i" and den_a.size and num_a.size
             and max(abs(int(num_a.min())), abs(int(num_a.max()))) < INT64_SAFE and int(den_a.max()) < INT64_SAFE)
    if not small:
        n_b, d_b = np.broadcast_arrays(num_a.astype(object), den_a.astype(object))
        out = np.empty(n_b.shape, dtype=object)
        out.reshape(-1)[:] = [div_round_int(int(a), int(b), rounding)
                              for a, b in zip(n_b.reshape(-1).tolist(), d_b.reshape(-1).tolist())]
        try:
            return out.astype(np.int64)
        except OverflowError:
            return out
    num_a, den_a = num_a.astype(np.int64, copy=False), den_a.astype(np.int64, copy=False)
    q = np.floor_divide(num_a, den_a)
    rem = num_a - q * den_a  # exact: 0 <= rem < den < 2**62
    return q + round_up(2 * rem, den_a, num_a < 0, (q & 1) == 1, rounding.code).astype(np.int64)


__all__ = ["div_round", "div_round_int"]
