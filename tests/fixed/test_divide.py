"""`div_round` (the pools' one rounded division) equals the Fraction oracle, ties and extremes included."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qsim.errors import QsimError
from qsim.fixed.divide import div_round, div_round_int
from qsim.fixed.modes import Rounding
from qsim.fixed.ref import div_round_ref

MODES = st.sampled_from(list(Rounding))
DENS = st.one_of(st.integers(1, 16), st.integers(1, 2**40), st.sampled_from([1, 2, 3, 9, 49, 64, 2**61]))
NUMS = st.one_of(st.integers(-300, 300), st.integers(-(2**61), 2**61),
                 st.sampled_from([0, 2**62 - 1, -(2**62) + 1, -(2**62), 2**62, -(2**63), 2**63 - 1]))


@given(st.lists(st.tuples(NUMS, DENS, st.booleans()), min_size=1, max_size=12), MODES)
def test_every_element_equals_the_oracle(pairs, rounding):
    nums, dens = [], []
    for num, den, tie in pairs:
        if tie and den % 2 == 0:  # an exact tie: num / den = k + 1/2
            num = (num // den) * den + den // 2
            num = max(min(num, 2**63 - 1), -(2**63))
        nums.append(num)
        dens.append(den)
    want = [div_round_ref(n, d, rounding) for n, d in zip(nums, dens)]
    got = div_round(np.array(nums, dtype=np.int64), np.array(dens, dtype=np.int64), rounding)
    assert [int(v) for v in got] == want
    assert [div_round_int(n, d, rounding) for n, d in zip(nums, dens)] == want


def test_ties_by_hand():
    """+-1.5 and +-2.5 (den 2), +-0.5 (den 4 of 2) under every mode: the table of docs/numerics."""
    num = np.array([3, -3, 5, -5, 2, -2])
    den = np.array([2, 2, 2, 2, 4, 4])
    table = {m.value: div_round(num, den, m).tolist() for m in Rounding}
    assert table == {
        "floor": [1, -2, 2, -3, 0, -1],
        "toward_zero": [1, -1, 2, -2, 0, 0],
        "half_up": [2, -1, 3, -2, 1, 0],
        "half_even": [2, -2, 2, -2, 0, 0],
        "half_away": [2, -2, 3, -3, 1, -1],
    }


def test_thirds_and_broadcasting():
    """Non-power-of-two counts (a 3x3 window: 9; a "same" edge: 6): never a tie, nearest wins."""
    got = div_round(np.array([[4, -4], [5, -5]]), np.array([9, 6]), "half_up")  # 0.44 -0.67 / 0.56 -0.83
    assert got.tolist() == [[0, -1], [1, -1]]


def test_beyond_int64_goes_through_python_ints():
    big = np.array([2**62 + 3, -(2**63)], dtype=np.int64)
    assert div_round(big, 2, "half_even").tolist() == [div_round_ref(2**62 + 3, 2, "half_even"), -(2**62)]
    obj = np.array([2**80 + 1], dtype=object)
    out = div_round(obj, 2, "half_up")
    assert out.dtype == object and int(out[0]) == 2**79 + 1


def test_divisor_must_be_positive():
    with pytest.raises(QsimError, match="divisor must be > 0"):
        div_round(np.array([1]), np.array([0]), "floor")
