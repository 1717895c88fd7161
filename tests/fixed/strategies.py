"""Hypothesis strategies shared by the fixed-point tests: formats, codes, real values."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from qsim.fixed import Overflow, QFormat, Rounding

ROUNDINGS = list(Rounding)
OVERFLOWS = list(Overflow)
roundings = st.sampled_from(ROUNDINGS)
overflows = st.sampled_from(OVERFLOWS)


@st.composite
def formats(draw, min_word: int = 2, max_word: int = 32, edge64: bool = True) -> QFormat:
    """Formats with word 2..32 bits, plus (1 in 8) the 64-bit (signed) / 63-bit (unsigned) edge."""
    signed = draw(st.booleans())
    if edge64 and draw(st.integers(0, 7)) == 0:
        word = 64 if signed else 63
    else:
        word = draw(st.integers(min_word, max_word))
    frac = draw(st.integers(0, word - (1 if signed else 0)))
    return QFormat.from_word(word, frac, signed)


def codes(fmt: QFormat, max_size: int = 16):
    """Lists of valid codes of `fmt`, biased to the extremes and to zero."""
    edge = st.sampled_from([fmt.min_code, fmt.max_code, 0, min(fmt.max_code, 1), max(fmt.min_code, -1),
                            fmt.min_code + 1, fmt.max_code - 1])
    anyc = st.integers(fmt.min_code, fmt.max_code)
    return st.lists(st.one_of(edge, anyc), min_size=1, max_size=max_size)


@st.composite
def reals_for(draw, fmt: QFormat, max_size: int = 16) -> np.ndarray:
    """float64 values around `fmt`'s range: exact codes, ties, near-ties, out-of-range, wild."""
    lsb = fmt.lsb

    def near_code():
        k = draw(st.integers(2 * fmt.min_code - 4, 2 * fmt.max_code + 4))
        part = draw(st.sampled_from([0.0, 0.5, 0.25, 0.75, -0.5, 0.5 - 2**-20, 0.5 + 2**-20]))
        return (k + part) * lsb

    elements = []
    for _ in range(draw(st.integers(1, max_size))):
        kind = draw(st.integers(0, 3))
        if kind <= 1:
            elements.append(near_code())
        elif kind == 2:
            elements.append(draw(st.floats(fmt.min_value * 1.5 - 1, fmt.max_value * 1.5 + 1,
                                           allow_nan=False, allow_infinity=False)))
        else:
            elements.append(draw(st.floats(allow_nan=False, allow_infinity=False, width=64)))
    return np.array(elements, dtype=np.float64)
