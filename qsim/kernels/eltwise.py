"""Integer element-wise and data-movement kernels: ReLU/ReLU6, residual add, concat, zero
padding, nearest upsampling.

Contract (all inputs are int64 codes of a stated format; every narrowing goes through
`qsim.fixed.rescale` with the plan's rounding and overflow, its counter seeing the exact
rounded value before narrowing):

* ``relu``: ``y = clip(x, 0, cap_in)`` exactly in the input format, where ``cap_in =
  floor(max_value * 2**in_frac)`` (ReLU6: the code of 6.0; no cap for plain ReLU), then
  rescaled to the output format (site ``act``), then clipped at ``cap_out = floor(max_value
  * 2**out_frac)``. When ``max_value`` is not representable in the output format (e.g. 6.0
  in Q1.14), the result saturates at ``max_code`` (or wraps, if the plan says ``wrap``) and
  each such element is an overflow event at ``act``. When input and output formats are
  equal nothing rounds; values above the format's range were already saturated (and
  counted) by the producer's requantization.
* ``add``: operands are aligned exactly to the largest fraction count among them (left
  shifts), summed exactly in int64, then rounded once to the output format (site ``add``).
  So ``a + b`` rounds once, never per operand.
* ``concat``: each input is rescaled to the output format (site ``concat``), then joined
  along channels.
* ``pad``: zeros (code 0 = value 0 in every format); the format does not change.
* ``upsample_nearest``: each code repeated ``fh x fw`` times, then rescaled to the output
  format (site ``upsample``; exact and overflow-free when the formats are equal).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from qsim.errors import InputError, PlanError
from qsim.fixed.cast import rescale
from qsim.fixed.counters import OverflowCounter
from qsim.fixed.format import QFormat
from qsim.fixed.limits import INT64_SAFE
from qsim.fixed.modes import Overflow, Rounding

INT64_SAFE_LIMIT = INT64_SAFE


def cap_code(max_value: float, fmt: QFormat) -> int:
    """``floor(max_value * 2**frac_bits)``: the largest code not above `max_value` (exact).

    >>> cap_code(6.0, QFormat.parse("Q6.9"))
    3072
    """
    return math.floor(Fraction(max_value) * 2**fmt.frac_bits)


@dataclass(frozen=True)
class ReluSpec:
    """A ReLU / ReLU6 fused into a MAC's tail: output format, modes and the caps as codes.

    ``cap_in`` / ``cap_out``: ``max_value`` as a code of the MAC's output format / of `fmt`
    (2**62: no cap).
    """

    fmt: QFormat
    max_value: float | None
    cap_in: int
    cap_out: int
    rounding: Rounding
    overflow: Overflow


def relu_spec(in_fmt: QFormat, out_fmt: QFormat, max_value, rounding, overflow) -> ReluSpec:
    """The `ReluSpec` of `relu` for the fused tail of a MAC kernel (`qsim.kernels.tail`)."""
    if max_value is not None and not max_value > 0:
        raise PlanError(f"relu max_value must be > 0 for a fixed-point clip, got {max_value!r}")
    no_cap = INT64_SAFE
    cap_in = no_cap if max_value is None else min(cap_code(max_value, in_fmt), no_cap)
    cap_out = no_cap if max_value is None else min(cap_code(max_value, out_fmt), no_cap)
    return ReluSpec(out_fmt, max_value, cap_in, cap_out, Rounding.parse(rounding), Overflow.parse(overflow))


def relu(x, *, in_fmt: QFormat, out_fmt: QFormat, max_value=None, rounding, overflow,
         counter: OverflowCounter | None = None) -> np.ndarray:
    """ReLU / ReLU6 on codes (see module doc)."""
    y = np.maximum(np.asarray(x, dtype=np.int64), 0)
    if max_value is not None:
        if not max_value > 0:
            raise PlanError(f"relu max_value must be > 0 for a fixed-point clip, got {max_value!r}")
        cap_in = cap_code(max_value, in_fmt)
        if cap_in < in_fmt.max_code:
            y = np.minimum(y, cap_in)
    y = rescale(y, in_fmt.frac_bits, out_fmt, rounding=rounding, overflow=overflow, counter=counter)
    if max_value is not None:
        cap_out = cap_code(max_value, out_fmt)
        if cap_out < out_fmt.max_code:
            y = np.minimum(y, cap_out)
    return y


def add(inputs, in_fmts, *, out_fmt: QFormat, rounding, overflow,
        counter: OverflowCounter | None = None) -> np.ndarray:
    """Exact sum of operands aligned to the largest fraction count, rounded once to `out_fmt`."""
    if len(inputs) < 2:
        raise InputError(f"add needs at least 2 operands, got {len(inputs)}")
    shapes = {np.shape(a) for a in inputs}
    if len(shapes) != 1:
        raise InputError(f"add operands must have equal shapes, got {sorted(shapes)}")
    frac = max(f.frac_bits for f in in_fmts)
    bound = sum(max(abs(f.min_code), f.max_code) << (frac - f.frac_bits) for f in in_fmts)
    if bound >= INT64_SAFE_LIMIT:
        raise PlanError(f"add: aligned operands {', '.join(map(str, in_fmts))} could reach {bound}, beyond int64")
    total = np.zeros(shapes.pop(), dtype=np.int64)
    for a, f in zip(inputs, in_fmts):
        total += np.asarray(a, dtype=np.int64) << np.int64(frac - f.frac_bits)
    return rescale(total, frac, out_fmt, rounding=rounding, overflow=overflow, counter=counter)


def concat(inputs, in_fmts, *, out_fmt: QFormat, rounding, overflow,
           counter: OverflowCounter | None = None) -> np.ndarray:
    """Rescale every input to `out_fmt`, then join along the channel axis."""
    if not inputs:
        raise InputError("concat needs at least 1 input")
    heads = {np.shape(a)[:-1] for a in inputs}
    if len(heads) != 1:
        raise InputError(f"concat inputs must agree on all but the channel axis, got shapes "
                         f"{[np.shape(a) for a in inputs]}")
    parts = [rescale(np.asarray(a, dtype=np.int64), f.frac_bits, out_fmt, rounding=rounding,
                     overflow=overflow, counter=counter) for a, f in zip(inputs, in_fmts)]
    return np.concatenate(parts, axis=-1)


def pad(x, pads) -> np.ndarray:
    """Zero padding (top, bottom, left, right) of NHWC codes."""
    t, b, l, r = (int(p) for p in pads)
    if min(t, b, l, r) < 0:
        raise InputError(f"pad amounts must be >= 0, got {pads}")
    return np.pad(np.asarray(x, dtype=np.int64), ((0, 0), (t, b), (l, r), (0, 0)))


def upsample_nearest(x, size, *, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow,
                     counter: OverflowCounter | None = None) -> np.ndarray:
    """Repeat every pixel ``size = (fh, fw)`` times, then rescale to `out_fmt`."""
    fh, fw = (int(s) for s in size)
    if fh < 1 or fw < 1:
        raise InputError(f"upsample size must be >= 1, got {size}")
    y = np.repeat(np.repeat(np.asarray(x, dtype=np.int64), fh, axis=1), fw, axis=2)
    return rescale(y, in_fmt.frac_bits, out_fmt, rounding=rounding, overflow=overflow, counter=counter)
