"""Hypothesis strategies of the fixed-point tests: the public ones of `qsim.testing`.

Kept as a module so the tests' imports stay short; the defaults here are the fixed-point
core's (words up to 32 bits plus the 64-bit edge), wider than `qsim.testing.formats`'.
"""
from __future__ import annotations

from qsim.testing import OVERFLOWS, ROUNDINGS, overflows, reals_for, roundings  # noqa: F401
from qsim.testing import code_lists as codes  # noqa: F401
from qsim.testing import formats as _formats


def formats(min_word: int = 2, max_word: int = 32, edge64: bool = True):
    """Formats with word 2..32 bits, plus (1 in 8) the 64-bit (signed) / 63-bit (unsigned) edge."""
    return _formats(min_word, max_word, edge64=edge64)
