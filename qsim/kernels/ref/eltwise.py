"""Reference element-wise kernels on Python ints and Fractions (see `qsim.kernels.eltwise`).

Each works value by value from the definition: the real value of every operand is an
exact `Fraction`, the result is computed exactly and rounded once by `round_ref`.
Each returns ``(codes, Tally)`` for the site that narrows.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from qsim.fixed.format import QFormat
from qsim.fixed.ref import narrow_one_ref, round_ref
from qsim.kernels.ref.common import Tally


def _to_code(value: Fraction, fmt: QFormat, rounding, overflow, tally: Tally) -> int:
    r = round_ref(value * 2**fmt.frac_bits, rounding)
    tally.see(r, fmt.min_code, fmt.max_code)
    return narrow_one_ref(r, fmt.word_bits, fmt.signed, overflow)


def _map(shape, fn) -> np.ndarray:
    out = np.zeros(shape, dtype=np.int64)
    for idx in np.ndindex(*shape):
        out[idx] = fn(idx)
    return out


def relu_ref(x, *, in_fmt: QFormat, out_fmt: QFormat, max_value=None, rounding, overflow):
    """``min(max(v, 0), max_value)`` on the exact value, clipped at both grids' caps."""
    x = np.asarray(x)
    tally = Tally()
    cap = None if max_value is None else Fraction(max_value)

    def one(idx):
        v = max(Fraction(int(x[idx]), 2**in_fmt.frac_bits), Fraction(0))
        if cap is not None:  # clip on the input grid: the largest input code <= cap
            v = min(v, Fraction(math.floor(cap * 2**in_fmt.frac_bits), 2**in_fmt.frac_bits))
        c = _to_code(v, out_fmt, rounding, overflow, tally)
        if cap is not None:
            c = min(c, math.floor(cap * 2**out_fmt.frac_bits))
        return c

    return _map(x.shape, one), tally


def add_ref(inputs, in_fmts, *, out_fmt: QFormat, rounding, overflow):
    """Exact real sum of the operands, rounded once."""
    tally = Tally()
    arrs = [np.asarray(a) for a in inputs]

    def one(idx):
        return _to_code(sum(Fraction(int(a[idx]), 2**f.frac_bits) for a, f in zip(arrs, in_fmts)),
                        out_fmt, rounding, overflow, tally)

    return _map(arrs[0].shape, one), tally


def concat_ref(inputs, in_fmts, *, out_fmt: QFormat, rounding, overflow):
    """Every input element re-expressed in `out_fmt`, channels joined."""
    tally = Tally()
    parts = []
    for a, f in zip(inputs, in_fmts):
        a = np.asarray(a)
        parts.append(_map(a.shape, lambda idx, a=a, f=f: _to_code(Fraction(int(a[idx]), 2**f.frac_bits),
                                                                   out_fmt, rounding, overflow, tally)))
    return np.concatenate(parts, axis=-1), tally


def pad_ref(x, pads):
    x = np.asarray(x)
    t, b, l, r = pads
    n, h, w, c = x.shape
    return _map((n, h + t + b, w + l + r, c),
                lambda i: int(x[i[0], i[1] - t, i[2] - l, i[3]]) if t <= i[1] < t + h and l <= i[2] < l + w else 0)


def upsample_nearest_ref(x, size, *, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow):
    x = np.asarray(x)
    tally = Tally()
    fh, fw = size
    n, h, w, c = x.shape
    return _map((n, h * fh, w * fw, c), lambda i: _to_code(
        Fraction(int(x[i[0], i[1] // fh, i[2] // fw, i[3]]), 2**in_fmt.frac_bits),
        out_fmt, rounding, overflow, tally)), tally
