"""Argument value types shared by the verbs: numbers that must be finite or in a range, mode names.

Each is an ``argparse`` ``type=`` callable, so a bad value is argparse's one-line usage error
(exit 2) naming the flag, before any work starts: ``--sqnr-threshold nan`` or
``--fddb-alpha -1`` are refused, never silently used or clamped.
"""
from __future__ import annotations

import argparse
import math


def finite_float(text: str) -> float:
    """A finite number (no nan/inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def unit_float(text: str) -> float:
    """A number in [0, 1] (IoU, score thresholds)."""
    value = finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def overlap_float(text: str) -> float:
    """A number in (0, 1] (an IoU a match needs: 0 would match boxes that do not overlap)."""
    value = finite_float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def int_in(lo: int, hi: int):
    """A type accepting integers lo..hi (inclusive)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer in {lo}..{hi}, got {value}")
        return value

    parse.__name__ = f"int in {lo}..{hi}"
    return parse


def rounding_name(text: str) -> str:
    """A rounding mode: ours (``half_even``) or a foreign name (``AP_RND_CONV``); returns ours."""
    from qsim.errors import QsimError
    from qsim.fixed.modes import Rounding

    try:
        return Rounding.parse(text).value
    except QsimError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def overflow_name(text: str) -> str:
    """An overflow mode: ``saturate``/``wrap`` or a foreign name (``AP_SAT``); returns ours."""
    from qsim.errors import QsimError
    from qsim.fixed.modes import Overflow

    try:
        return Overflow.parse(text).value
    except QsimError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
