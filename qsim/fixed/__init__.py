"""Fixed-point (Q-format) arithmetic core.

* `QFormat` (format.py): a number format; `Rounding`, `Overflow` (modes.py): the modes
  with their integer formulas.
* cast.py: `quantize` (real -> code), `dequantize`, `rescale` / `requantize`
  (code -> code, the one rounding site of every kernel), `narrow` / `accumulate` /
  `saturating_sum` (the overflow sites), exact `mul` and `add`.
* counters.py: `OverflowCounter`, fed by every overflow site.
* ref.py: slow, obviously-correct references (Python ints, `fractions.Fraction`).
* report.py: error and overflow of real tensors cast to a format (``qsim quantize``).
* _numba.py: the compiled paths of cast.py (same results, tested).
"""
from qsim.fixed.cast import (
    accumulate,
    add,
    add_format,
    dequantize,
    mul,
    mul_format,
    narrow,
    quantize,
    requantize,
    rescale,
    saturating_sum,
    sum_format,
)
from qsim.fixed.counters import OverflowCounter
from qsim.fixed.format import QFormat
from qsim.fixed.modes import Overflow, Rounding

__all__ = [
    "QFormat",
    "Rounding",
    "Overflow",
    "OverflowCounter",
    "quantize",
    "dequantize",
    "requantize",
    "rescale",
    "narrow",
    "accumulate",
    "saturating_sum",
    "mul",
    "add",
    "mul_format",
    "add_format",
    "sum_format",
]
