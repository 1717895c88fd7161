"""OverflowCounter: counts, headroom, merge, JSON round trip; and the compiled paths agree
with the NumPy paths on large arrays (codes and counters)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qsim.errors import QsimError
from qsim.fixed import Overflow, OverflowCounter, QFormat, Rounding, _numba, cast, quantize, ref, rescale


def test_headroom_bits():
    c = OverflowCounter("x")
    assert c.headroom_bits == math.inf and c.rate == 0.0
    c.observe(np.array([0, 0]), -128, 127)
    assert c.headroom_bits == math.inf  # only zeros: no magnitude yet
    c.observe(np.array([32, -64]), -128, 127)
    assert c.headroom_bits == 1.0 and c.events == 0 and c.elements == 4
    c.observe(np.array([512]), -128, 127)
    assert c.headroom_bits == -2.0 and c.events == 1 and c.max_abs == 512


def test_merge_keeps_worst_ratio_across_ranges():
    wide = OverflowCounter("acc")
    wide.observe(np.array([1000]), -(2**15), 2**15 - 1)  # 5.03 spare bits
    narrow = OverflowCounter("out")
    narrow.observe(np.array([100]), -128, 127)  # 0.36 spare bits
    merged = OverflowCounter().merge(wide).merge(narrow)
    assert merged.max_abs == 1000 and merged.elements == 2
    assert merged.headroom_bits == pytest.approx(math.log2(128 / 100))
    assert OverflowCounter().merge(narrow).merge(wide) == merged  # order does not matter


@given(st.lists(st.tuples(st.lists(st.integers(-(2**70), 2**70), max_size=8), st.integers(1, 64)), max_size=5))
def test_merge_equals_observing_everything(batches):
    one, parts = OverflowCounter("s"), []
    for values, bits in batches:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        one.observe(np.array(values, dtype=object), lo, hi)
        p = OverflowCounter("s")
        p.observe(values, lo, hi)
        parts.append(p)
        assert (p.events, p.elements, p.max_abs) == ref.counts_ref(values, lo, hi)
    merged = OverflowCounter("s")
    for p in parts:
        merged.merge(p)
    assert merged == one


def test_json_round_trip():
    c = OverflowCounter("conv/acc")
    c.observe([2**80, -3], -(2**31), 2**31 - 1)
    d = json.loads(json.dumps(c.to_dict()))
    assert OverflowCounter.from_dict(d) == c
    assert d["events"] == 1 and d["max_abs"] == 2**80 and d["headroom_bits"] == pytest.approx(-49.0)
    inf = OverflowCounter("in")
    inf.observe(np.array([np.inf, 1.0]), -128, 127)
    d = json.loads(json.dumps(inf.to_dict(), allow_nan=False))
    assert d["max_abs"] == "inf" and d["headroom_bits"] == "-inf"
    assert OverflowCounter.from_dict(d) == inf
    empty = json.loads(json.dumps(OverflowCounter().to_dict(), allow_nan=False))
    assert empty["headroom_bits"] == "inf"
    with pytest.raises(QsimError, match="not an OverflowCounter record"):
        OverflowCounter.from_dict({"events": 1})


def test_observe_rejects_bad_input():
    c = OverflowCounter("s")
    with pytest.raises(QsimError, match="non-integer"):
        c.observe(np.array([1.5]), 0, 3)
    with pytest.raises(QsimError, match="empty range"):
        c.observe(np.array([1]), 3, 0)


# --- compiled vs NumPy paths on large arrays ---------------------------------------------
@pytest.mark.parametrize("fmt", ["Q2.5", "Q6.9", "UQ0.8", "Q15.16", "Q0.63", "Q63.0", "UQ40.23"])
def test_quantize_paths_identical(fmt):
    fmt = QFormat.parse(fmt)
    rng = np.random.default_rng(7)
    n = cast.NUMBA_MIN_SIZE * 3
    x = rng.normal(0, 1, n) * rng.choice([1e-3, 1.0, 10.0, 1e4], n) * max(fmt.max_value, 1.0) / 4
    x[::5] = (rng.integers(-(2**20), 2**20, x[::5].size) + 0.5) * fmt.lsb  # exact ties
    x = x.reshape(3, -1, 4)
    for rounding in Rounding:
        for overflow in Overflow:
            c_np, c_nb, c_pub = OverflowCounter(), OverflowCounter(), OverflowCounter()
            a = cast.quantize_numpy(x, fmt, rounding, overflow, c_np)
            b = _numba.quantize(x, fmt, rounding, overflow, c_nb)
            if b is None:  # beyond the compiled kernel: nothing counted, the exact path redoes it
                assert c_nb.elements == 0
                b = cast.quantize_numpy(x, fmt, rounding, overflow, c_nb)
            c = quantize(x, fmt, rounding=rounding, overflow=overflow, counter=c_pub)
            assert a.shape == x.shape and np.array_equal(a, b) and np.array_equal(a, c)
            assert c_np == c_nb == c_pub


@pytest.mark.parametrize("shift", [0, 1, 7, 31, 62, 63])
def test_rescale_paths_identical(shift):
    rng = np.random.default_rng(shift)
    n = cast.NUMBA_MIN_SIZE * 2
    raw = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64, endpoint=True) >> rng.integers(0, 63, n)
    raw[:4] = [-(2**63), 2**63 - 1, -1, 0]
    for fmt in map(QFormat.parse, ["Q2.5", "Q15.16", "UQ0.8", "Q63.0"]):
        for rounding in Rounding:
            for overflow in Overflow:
                c_np, c_nb = OverflowCounter(), OverflowCounter()
                a = cast.narrow(cast._shift_exact(raw, shift, rounding), fmt.word_bits, fmt.signed,
                                overflow=overflow, counter=c_np)
                b = _numba.rescale(raw, shift, fmt, rounding, overflow, c_nb)
                assert np.array_equal(a, b) and c_np == c_nb
                pub = rescale(raw, fmt.frac_bits + shift, fmt, rounding=rounding, overflow=overflow)
                assert np.array_equal(a, pub)


def test_results_do_not_depend_on_batching():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 8, 20000)
    whole = quantize(x, "Q3.4", rounding="half_even", overflow="wrap")  # compiled path
    pieces = np.concatenate([quantize(p, "Q3.4", rounding="half_even", overflow="wrap")
                             for p in np.array_split(x, 97)])  # NumPy path (small pieces)
    assert np.array_equal(whole, pieces)


def test_float_peaks_and_huge_ints_serialise():
    c = OverflowCounter("fp16")
    c.record(events=1, elements=3, peak=70000.5, lo=-65504.0, hi=65504.0)  # an fp16 site
    d = json.loads(json.dumps(c.to_dict(), allow_nan=False))
    assert d["max_abs"] == 70000.5 and OverflowCounter.from_dict(d) == c
    h = OverflowCounter("huge")
    quantize(np.array([1e308]), "Q0.63", rounding="floor", overflow="saturate", counter=h)
    d = json.loads(json.dumps(h.to_dict(), allow_nan=False))
    assert d["max_abs"] == int(1e308) * 2**63 and OverflowCounter.from_dict(d) == h
