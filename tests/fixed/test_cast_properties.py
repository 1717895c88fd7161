"""Property tests: every fast cast equals the slow Python-int/Fraction reference (qsim.fixed.ref),
code for code and count for count, across random formats and every rounding x overflow mode."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from qsim.errors import FormatError, QuantizationError
from qsim.fixed import (
    Overflow,
    OverflowCounter,
    QFormat,
    Rounding,
    _numba,
    accumulate,
    add,
    cast,
    dequantize,
    mul,
    narrow,
    quantize,
    ref,
    requantize,
    rescale,
    saturating_sum,
    sum_format,
)

from .strategies import codes, formats, overflows, reals_for, roundings


def assert_counts(counter: OverflowCounter, counts: tuple) -> None:
    events, elements, max_abs = counts
    assert (counter.events, counter.elements, counter.max_abs) == (events, elements, max_abs)


# --- quantize --------------------------------------------------------------------------
@given(st.data(), formats(), roundings, overflows)
def test_quantize_matches_reference(data, fmt, rounding, overflow):
    x = data.draw(reals_for(fmt))
    want, counts = ref.quantize_ref(x.tolist(), fmt, rounding, overflow)
    c = OverflowCounter()
    got = quantize(x, fmt, rounding=rounding, overflow=overflow, counter=c)
    assert got.dtype == np.int64 and got.shape == x.shape
    assert got.tolist() == want
    assert_counts(c, counts)


@given(st.data(), formats(), roundings, overflows)
def test_quantize_compiled_path_matches_reference(data, fmt, rounding, overflow):
    # the Numba kernel on the same inputs (it is used for arrays >= NUMBA_MIN_SIZE)
    x = data.draw(reals_for(fmt))
    want, counts = ref.quantize_ref(x.tolist(), fmt, rounding, overflow)
    c = OverflowCounter()
    got = _numba.quantize(x, fmt, rounding, overflow, c)
    if got is None:  # beyond the kernel (infinities, codes past int64): nothing counted, the caller redoes it
        assert c.elements == 0
        got = cast.quantize_numpy(x, fmt, rounding, overflow, c)
    assert got.tolist() == want
    assert_counts(c, counts)


@given(st.data(), formats(), roundings, overflows)
def test_quantize_infinities(data, fmt, rounding, overflow):
    x = np.array([np.inf, -np.inf, 0.0, data.draw(st.floats(allow_nan=False, allow_infinity=False))])
    if overflow is Overflow.WRAP:
        with pytest.raises(QuantizationError, match=r"2 infinite value\(s\).*index \(0,\)"):
            quantize(x, fmt, rounding=rounding, overflow=overflow)
        return
    c = OverflowCounter()
    got = quantize(x, fmt, rounding=rounding, overflow=overflow, counter=c)
    want, counts = ref.quantize_ref(x.tolist(), fmt, rounding, overflow)
    assert got.tolist() == want
    assert (c.events, c.elements, c.max_abs) == counts
    assert c.headroom_bits == -math.inf


@given(st.data(), formats(max_word=53, edge64=False), roundings, overflows)
def test_round_trip_quantize_dequantize(data, fmt, rounding, overflow):
    # codes of words up to 53 bits are exact doubles, so the round trip is the identity
    q = np.array(data.draw(codes(fmt)), dtype=np.int64)
    c = OverflowCounter()
    assert quantize(dequantize(q, fmt), fmt, rounding=rounding, overflow=overflow, counter=c).tolist() == q.tolist()
    assert c.events == 0


@given(st.data(), formats(), roundings)
def test_round_trip_64_bit_edge_is_exact_in_reference(data, fmt, rounding):
    # beyond 53 bits dequantize rounds to a double; its value is still the nearest double
    q = data.draw(codes(fmt))
    got = dequantize(np.array(q, dtype=np.int64), fmt).tolist()
    assert got == [float(v) for v in ref.dequantize_ref(q, fmt)]


@given(st.data(), formats(), roundings)
def test_quantize_is_monotonic_under_saturate(data, fmt, rounding):
    x = np.sort(data.draw(reals_for(fmt)))
    q = quantize(x, fmt, rounding=rounding, overflow=Overflow.SATURATE).tolist()
    assert all(a <= b for a, b in zip(q, q[1:]))  # (np.diff could overflow int64 at the 64-bit edge)


@given(st.data(), formats(), roundings)
def test_quantize_error_bound_and_sign(data, fmt, rounding):
    x = data.draw(reals_for(fmt))
    x = x[(x >= fmt.min_value) & (x <= fmt.max_value)]  # in range: only rounding error
    assume(x.size)
    q = quantize(x, fmt, rounding=rounding, overflow=Overflow.SATURATE)
    for xv, qv in zip(x.tolist(), q.tolist()):
        v = Fraction(xv) * 2**fmt.frac_bits  # exact, in LSB units
        err = v - qv  # x - q, in LSBs
        if rounding.value.startswith("half"):
            assert abs(err) <= Fraction(1, 2)
        else:
            assert abs(err) < 1
        if rounding is Rounding.FLOOR:
            assert err >= 0
        if rounding is Rounding.TOWARD_ZERO:
            assert abs(qv) <= abs(v) and (qv == 0 or (qv > 0) == (v > 0))


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=12), formats(), roundings, overflows)
def test_quantize_integers_is_exact_scaling(ints, fmt, rounding, overflow):
    # integer inputs are scaled exactly (no float64 detour that would round 2**53 + 1)
    want, counts = ref.rescale_ref(ints, 0, fmt, rounding, overflow)
    c = OverflowCounter()
    got = quantize(np.array(ints, dtype=np.int64), fmt, rounding=rounding, overflow=overflow, counter=c)
    assert got.tolist() == want
    assert_counts(c, counts)


@given(st.data(), formats(), roundings, overflows)
def test_quantize_float32_equals_its_float64_value(data, fmt, rounding, overflow):
    x32 = data.draw(reals_for(fmt)).astype(np.float32)
    x32 = x32[np.isfinite(x32)]
    assume(x32.size)
    a = quantize(x32, fmt, rounding=rounding, overflow=overflow)
    assert a.tolist() == ref.quantize_ref(x32.astype(np.float64).tolist(), fmt, rounding, overflow)[0]


# --- narrow / accumulate ---------------------------------------------------------------
wide_ints = st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-300, 300),
                               st.integers(-(2**70), 2**70)), min_size=1, max_size=16)


@given(wide_ints, st.integers(1, 64), st.booleans(), overflows)
def test_narrow_matches_reference(raw, bits, signed, overflow):
    if not signed:
        bits = min(bits, 63)
    want, counts = ref.narrow_ref(raw, bits, signed, overflow)
    c = OverflowCounter()
    got = narrow(raw, bits, signed, overflow=overflow, counter=c)
    assert got.tolist() == want
    assert_counts(c, counts)


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=16), st.integers(1, 64))
def test_wrap_is_twos_complement_modulo(raw, bits):
    got = narrow(np.array(raw, dtype=np.int64), bits, True, overflow="wrap")
    for r, g in zip(raw, got.tolist()):
        assert (g - r) % 2**bits == 0 and -(2 ** (bits - 1)) <= g < 2 ** (bits - 1)


@given(st.lists(st.integers(-(2**40), 2**40), min_size=0, max_size=24), st.integers(2, 48), overflows)
def test_accumulate_models_running_register(terms, acc_bits, overflow):
    # wrap of the exact sum == a running wrapped sum (any order); saturate == clamp at the end
    exact = sum(terms)
    got = accumulate(np.array([exact], dtype=np.int64), acc_bits, overflow=overflow)
    assert got.tolist() == [ref.accumulate_ref(terms, acc_bits, overflow)]
    if overflow is Overflow.WRAP:
        assert got.tolist() == [ref.accumulate_ref(terms[::-1], acc_bits, overflow)]


@given(st.lists(st.lists(st.integers(-(2**20), 2**20), min_size=5, max_size=5), min_size=1, max_size=4),
       st.integers(2, 30), st.sampled_from([0, 1, -1]))
def test_saturating_sum_matches_reference(rows, acc_bits, axis):
    t = np.array(rows, dtype=np.int64)
    c = OverflowCounter()
    got = saturating_sum(t, acc_bits, axis=axis, counter=c)
    lines = t.T.tolist() if axis == 0 else t.tolist()
    results, partials = [], []
    for line in lines:
        r, _ = ref.saturating_sum_ref(line, acc_bits)
        results.append(r)
        acc = 0
        for v in line:  # the exact partial sums the counter must see
            partials.append(acc + v)
            acc = min(max(acc + v, -(2 ** (acc_bits - 1))), 2 ** (acc_bits - 1) - 1)
    assert got.tolist() == results
    lo, hi = ref.word_range_ref(acc_bits, True)
    assert_counts(c, ref.counts_ref(partials, lo, hi))


# --- rescale / requantize --------------------------------------------------------------
@given(st.data(), formats(), formats(), roundings, overflows)
def test_requantize_matches_reference(data, src, dst, rounding, overflow):
    q = data.draw(codes(src))
    want, counts = ref.requantize_ref(q, src, dst, rounding, overflow)
    c = OverflowCounter()
    got = requantize(np.array(q, dtype=np.int64), src, dst, rounding=rounding, overflow=overflow, counter=c)
    assert got.tolist() == want
    assert_counts(c, counts)


@given(st.data(), formats(), formats(), roundings, overflows)
def test_requantize_to_wider_is_exact(data, src, dst, rounding, overflow):
    assume(dst.signed >= src.signed)
    ib, fb = max(src.int_bits, dst.int_bits), max(src.frac_bits, dst.frac_bits)
    assume(ib + fb + dst.signed <= 64 and (dst.signed or ib + fb < 64))
    wide = QFormat(ib, fb, dst.signed)
    q = data.draw(codes(src))
    c = OverflowCounter()
    got = requantize(np.array(q, dtype=np.int64), src, wide, rounding=rounding, overflow=overflow, counter=c)
    assert ref.dequantize_ref(got.tolist(), wide) == ref.dequantize_ref(q, src)
    assert c.events == 0


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=12), st.integers(-70, 130),
       formats(), roundings, overflows)
def test_rescale_matches_reference(raw, src_frac, dst, rounding, overflow):
    want, counts = ref.rescale_ref(raw, src_frac, dst, rounding, overflow)
    c = OverflowCounter()
    got = rescale(np.array(raw, dtype=np.int64), src_frac, dst, rounding=rounding, overflow=overflow, counter=c)
    assert got.tolist() == want
    assert_counts(c, counts)


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=12), st.integers(0, 63),
       formats(), roundings, overflows)
def test_rescale_compiled_path_matches_reference(raw, shift, dst, rounding, overflow):
    want, counts = ref.rescale_ref(raw, dst.frac_bits + shift, dst, rounding, overflow)
    c = OverflowCounter()
    got = _numba.rescale(np.array(raw, dtype=np.int64), shift, dst, rounding, overflow, c)
    assert got.tolist() == want
    assert_counts(c, counts)


# --- exact arithmetic ------------------------------------------------------------------
@given(st.data(), formats(max_word=32, edge64=False), formats(max_word=32, edge64=False))
def test_mul_is_exact_and_format_holds_every_product(data, a_fmt, b_fmt):
    n = data.draw(st.integers(1, 8))
    a = data.draw(st.lists(st.integers(a_fmt.min_code, a_fmt.max_code), min_size=n, max_size=n))
    b = data.draw(st.lists(st.integers(b_fmt.min_code, b_fmt.max_code), min_size=n, max_size=n))
    a += [a_fmt.min_code, a_fmt.max_code]
    b += [b_fmt.min_code, b_fmt.max_code]
    if a_fmt.word_bits + b_fmt.word_bits > 64 or (not (a_fmt.signed or b_fmt.signed)
                                                  and a_fmt.word_bits + b_fmt.word_bits >= 64):
        with pytest.raises(FormatError, match="needs a"):
            mul(a, a_fmt, b, b_fmt)
        return
    got, fmt = mul(np.array(a), a_fmt, np.array(b), b_fmt)
    want, smallest = ref.mul_ref(a, a_fmt, b, b_fmt)
    assert got.tolist() == want
    assert fmt.frac_bits == smallest.frac_bits and fmt.signed == smallest.signed
    assert fmt.min_code <= smallest.min_code and smallest.max_code <= fmt.max_code
    if a_fmt.signed and b_fmt.signed:
        assert fmt == smallest  # the table is tight for signed x signed (min * min)


@given(st.data(), formats(max_word=40, edge64=False), formats(max_word=40, edge64=False))
def test_add_is_exact(data, a_fmt, b_fmt):
    n = data.draw(st.integers(1, 8))
    a = data.draw(st.lists(st.integers(a_fmt.min_code, a_fmt.max_code), min_size=n, max_size=n))
    b = data.draw(st.lists(st.integers(b_fmt.min_code, b_fmt.max_code), min_size=n, max_size=n))
    signed = a_fmt.signed or b_fmt.signed
    word = max(a_fmt.int_bits, b_fmt.int_bits) + 1 + max(a_fmt.frac_bits, b_fmt.frac_bits) + signed
    if word > 64 or (not signed and word == 64):
        with pytest.raises(FormatError, match="needs a"):
            add(np.array(a), a_fmt, np.array(b), b_fmt)
        return
    got, fmt = add(np.array(a), a_fmt, np.array(b), b_fmt)
    want, want_fmt = ref.add_ref(a, a_fmt, b, b_fmt)
    assert got.tolist() == want and fmt == want_fmt
    assert all(fmt.min_code <= v <= fmt.max_code for v in want)


def test_add_format_holds_extreme_sums():
    for a_fmt in map(QFormat.parse, ["Q3.2", "UQ3.2", "Q0.7", "UQ8.0"]):
        for b_fmt in map(QFormat.parse, ["Q1.5", "UQ2.6", "Q7.0"]):
            for x in (a_fmt.min_code, a_fmt.max_code):
                for y in (b_fmt.min_code, b_fmt.max_code):
                    got, fmt = add(np.array([x]), a_fmt, np.array([y]), b_fmt)
                    assert fmt.min_code <= int(got[0]) <= fmt.max_code


@given(formats(max_word=40, edge64=False), st.integers(1, 5000))
def test_sum_format_is_tight(fmt, n):
    try:
        sf = sum_format(fmt, n)
    except FormatError:
        assert (fmt.signed and (n * fmt.min_code < -(2**63) or n * fmt.max_code > 2**63 - 1)) or (
            not fmt.signed and n * fmt.max_code > 2**63 - 1)
        return
    assert sf.frac_bits == fmt.frac_bits and sf.signed == fmt.signed
    assert sf.min_code <= n * fmt.min_code and n * fmt.max_code <= sf.max_code
    narrower = ref.word_range_ref(sf.word_bits - 1, fmt.signed) if sf.word_bits > 1 else None
    if narrower:
        assert not (narrower[0] <= n * fmt.min_code and n * fmt.max_code <= narrower[1])
