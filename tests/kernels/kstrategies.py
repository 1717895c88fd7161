"""Hypothesis strategies of the kernel tests: formats, modes and code arrays from `qsim.testing`."""
from __future__ import annotations

from qsim.testing import codes, overflows, roundings  # noqa: F401
from qsim.testing import formats as qformats  # noqa: F401

ROUNDINGS = roundings
OVERFLOWS = overflows


def assert_tally(counter, tally):
    """An OverflowCounter agrees with the reference's hand-kept Tally."""
    assert counter.events == tally.events
    assert counter.elements == tally.elements
    assert counter.max_abs == tally.peak
