"""The one rounding rule (`round_up`) and its branch-free form (`rounding_offsets`) against the oracle."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from qsim.fixed.modes import Rounding, round_up, rounding_offsets, shift_round, shift_round_int
from qsim.fixed.ref import round_ref

SHIFTS = st.integers(1, 62)
VALUES = st.one_of(st.integers(-(2**61), 2**61), st.integers(-64, 64))


def _offsets_round(v: int, s: int, rounding: Rounding) -> int:
    base, neg, par = rounding_offsets(s, rounding)
    return (v + base + (neg if v < 0 else 0) + par * ((v >> s) & 1)) >> s


@given(VALUES, SHIFTS, st.sampled_from(list(Rounding)), st.booleans())
def test_every_form_equals_the_oracle(v, s, rounding, tie):
    if tie:  # exact ties, where the modes differ
        v = (v >> s << s) + (1 << (s - 1))
    want = round_ref(Fraction(v, 2**s), rounding)
    assert shift_round_int(v, s, rounding) == want
    assert int(shift_round(np.array([v], np.int64), s, rounding)[0]) == want
    assert _offsets_round(v, s, rounding) == want


def test_round_up_on_floats_and_arrays_is_the_same_rule():
    d = np.array([0.25, 0.5, 0.5, 0.75])
    negative = np.array([False, False, True, True])
    odd = np.array([True, True, False, False])
    table = {m: round_up(d, 0.5, negative, odd, m.code).tolist() for m in Rounding}
    assert table[Rounding.FLOOR] == [False] * 4
    assert table[Rounding.TOWARD_ZERO] == [False, False, True, True]
    assert table[Rounding.HALF_UP] == [False, True, True, True]
    assert table[Rounding.HALF_EVEN] == [False, True, False, True]
    assert table[Rounding.HALF_AWAY] == [False, True, False, True]
    for m in Rounding:  # scalars give the same answers
        assert [bool(round_up(a, 0.5, n, o, m.code)) for a, n, o in zip(d, negative, odd)] == table[m]
