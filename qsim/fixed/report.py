"""What quantizing a set of real tensors to one Q format does to them (``qsim quantize``).

For each tensor ``x`` (float64 view of its values) and its codes ``q = quantize(x, fmt)``
with ``e = dequantize(q) - x`` (sums in float64 over the tensor):

====================  =================================================================
``min`` / ``max``      range of ``x``
``int_bits_needed``    smallest ``m >= 0`` with ``-2**m <= min`` and ``max < 2**m``: the
                       integer bits of a signed format holding the range (before rounding;
                       None if the tensor holds infinities)
``max_abs_error``      ``max |e|``
``rms_error``          ``sqrt(mean e**2)``
``sqnr_db``            ``10 log10(sum x**2 / sum e**2)`` (``inf`` when ``e == 0``)
``overflow``           the `OverflowCounter` of the cast: events (saturated or wrapped
                       elements), rate and headroom bits (negative when overflowing)
====================  =================================================================

`Totals` pools every tensor: SQNR of the pooled sums, largest error, fewest headroom bits.

>>> rep = tensor_report("w", np.array([0.5, -0.26, 3.0]), QFormat.parse("Q0.7"),
...                     rounding="half_even", overflow="saturate")
>>> rep.int_bits_needed, rep.overflow.events, round(rep.max_abs_error, 6)
(2, 1, 2.007812)
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qsim.fixed.cast import dequantize, quantize
from qsim.fixed.counters import OverflowCounter
from qsim.fixed.format import QFormat


@dataclass
class TensorReport:
    """Quantization error and overflow of one tensor (see the module table)."""

    name: str
    shape: tuple[int, ...]
    size: int
    min: float
    max: float
    int_bits_needed: int | None  # None when the tensor holds +-inf
    max_abs_error: float
    rms_error: float
    sqnr_db: float
    sum_sq_signal: float
    sum_sq_error: float
    overflow: OverflowCounter

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "shape": list(self.shape), "size": self.size,
            "min": self.min, "max": self.max, "int_bits_needed": self.int_bits_needed,
            "max_abs_error": self.max_abs_error, "rms_error": self.rms_error,
            "sqnr_db": json_float(self.sqnr_db), "overflow": self.overflow.to_dict(),
        }


@dataclass
class Totals:
    """Pooled figures over several `TensorReport` s of one format."""

    tensors: int = 0
    size: int = 0
    max_abs_error: float = 0.0
    sum_sq_signal: float = 0.0
    sum_sq_error: float = 0.0
    overflow: OverflowCounter = field(default_factory=lambda: OverflowCounter("total"))
    tensors_overflowing: int = 0

    def add(self, rep: TensorReport) -> None:
        self.tensors += 1
        self.size += rep.size
        self.max_abs_error = max(self.max_abs_error, rep.max_abs_error)
        self.sum_sq_signal += rep.sum_sq_signal
        self.sum_sq_error += rep.sum_sq_error
        self.overflow.merge(rep.overflow)
        self.tensors_overflowing += rep.overflow.events > 0

    @property
    def rms_error(self) -> float:
        return math.sqrt(self.sum_sq_error / self.size) if self.size else 0.0

    @property
    def sqnr_db(self) -> float:
        return _sqnr(self.sum_sq_signal, self.sum_sq_error)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensors": self.tensors, "size": self.size, "max_abs_error": self.max_abs_error,
            "rms_error": self.rms_error, "sqnr_db": json_float(self.sqnr_db),
            "tensors_overflowing": self.tensors_overflowing, "overflow": self.overflow.to_dict(),
        }


def _sqnr(sig: float, err: float) -> float:
    if err == 0.0:
        return math.inf
    if sig == 0.0:
        return -math.inf
    return 10.0 * math.log10(sig / err)


def json_float(v: float) -> float | str:
    """Finite floats as is; infinities as the strings "inf" / "-inf" (strict JSON)."""
    return v if math.isfinite(v) else ("inf" if v > 0 else "-inf")


def int_bits_needed(lo: float, hi: float) -> int:
    """Smallest ``m >= 0`` with ``-2**m <= lo`` and ``hi < 2**m``.

    >>> int_bits_needed(-1.0, 0.99), int_bits_needed(-1.0, 1.0), int_bits_needed(-242.1, 155.9)
    (0, 1, 8)
    """
    m = 0
    while not (-(2.0**m) <= lo and hi < 2.0**m):
        m += 1
    return m


def tensor_report(name: str, x: np.ndarray, fmt: QFormat, *, rounding, overflow) -> TensorReport:
    """Quantize one real tensor to `fmt` and measure it (NaN raises, naming count and index)."""
    x = np.asarray(x, dtype=np.float64)
    counter = OverflowCounter(name)
    q = quantize(x, fmt, rounding=rounding, overflow=overflow, counter=counter)
    if x.size == 0:
        return TensorReport(name, x.shape, 0, 0.0, 0.0, 0, 0.0, 0.0, math.inf, 0.0, 0.0, counter)
    finite = np.isfinite(x)  # +-inf (saturate only) are counted as overflow, not as error
    e = np.where(finite, dequantize(q, fmt) - np.where(finite, x, 0.0), 0.0).ravel()
    xs = np.where(finite, x, 0.0).ravel()
    sse, ssx = float(np.dot(e, e)), float(np.dot(xs, xs))
    lo, hi = float(x.min()), float(x.max())
    return TensorReport(
        name=name, shape=tuple(x.shape), size=int(x.size), min=lo, max=hi,
        int_bits_needed=int_bits_needed(lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None,
        max_abs_error=float(np.max(np.abs(e))), rms_error=math.sqrt(sse / x.size),
        sqnr_db=_sqnr(ssx, sse), sum_sq_signal=ssx, sum_sq_error=sse, overflow=counter,
    )


def report_tensors(tensors: Iterable[tuple[str, np.ndarray]], fmt: "QFormat | str", *, rounding,
                   overflow) -> tuple[list[TensorReport], Totals]:
    """`tensor_report` for each ``(name, array)`` and their `Totals`."""
    fmt = QFormat.parse(fmt)
    reports, totals = [], Totals()
    for name, x in tensors:
        rep = tensor_report(name, x, fmt, rounding=rounding, overflow=overflow)
        reports.append(rep)
        totals.add(rep)
    return reports, totals
