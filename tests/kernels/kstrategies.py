"""Hypothesis strategies shared by the kernel tests: formats, modes and code arrays with edges."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qsim.fixed import Overflow, QFormat, Rounding

ROUNDINGS = st.sampled_from(list(Rounding))
OVERFLOWS = st.sampled_from(list(Overflow))


@st.composite
def qformats(draw, min_word=2, max_word=16, signed=None, max_frac=None):
    signed = draw(st.booleans()) if signed is None else signed
    word = draw(st.integers(min_word, max_word))
    top = word - (1 if signed else 0)
    frac = draw(st.integers(0, top if max_frac is None else min(top, max_frac)))
    return QFormat(top - frac, frac, signed)


def codes(fmt: QFormat, shape) -> st.SearchStrategy:
    """int64 codes of `fmt`, biased toward the extremes (min/max code, 0, +-1)."""
    edges = sorted({fmt.min_code, fmt.max_code, 0, min(1, fmt.max_code), max(-1, fmt.min_code),
                    fmt.min_code + 1, fmt.max_code - 1} & set(range(fmt.min_code, fmt.max_code + 1)))
    elem = st.one_of(st.sampled_from(edges), st.integers(fmt.min_code, fmt.max_code))
    return arrays(np.int64, shape, elements=elem)


def assert_tally(counter, tally):
    """An OverflowCounter agrees with the reference's hand-kept Tally."""
    assert counter.events == tally.events
    assert counter.elements == tally.elements
    assert counter.max_abs == tally.peak
