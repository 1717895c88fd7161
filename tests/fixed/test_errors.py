"""Bad input gives a QsimError that names the value at fault; never a raw NumPy error."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.errors import FormatError, QsimError, QuantizationError
from qsim.fixed import (
    accumulate,
    add,
    dequantize,
    mul,
    narrow,
    quantize,
    requantize,
    rescale,
    saturating_sum,
)


def test_nan_names_count_and_first_index():
    x = np.zeros((2, 3))
    x[1, 2] = np.nan
    x[1, 0] = np.nan
    with pytest.raises(QuantizationError, match=r"2 NaN value\(s\) of 6; first at index \(1, 0\)"):
        quantize(x, "Q2.5", rounding="floor", overflow="saturate")
    big = np.zeros(10000)
    big[1234] = np.nan
    with pytest.raises(QuantizationError, match=r"1 NaN.*\(1234,\)"):
        quantize(big, "Q2.5", rounding="floor", overflow="saturate")


def test_inf_under_wrap():
    with pytest.raises(QuantizationError, match="cannot wrap"):
        quantize(np.full(5000, -np.inf), "Q2.5", rounding="floor", overflow="wrap")


def test_modes_are_required_and_checked():
    with pytest.raises(TypeError):
        quantize(np.zeros(3), "Q2.5")  # no hidden defaults
    with pytest.raises(TypeError):
        requantize(np.zeros(3, dtype=np.int64), "Q2.5", "Q1.2", rounding="floor")
    with pytest.raises(FormatError, match="'round_half'"):
        quantize(np.zeros(3), "Q2.5", rounding="round_half", overflow="saturate")
    with pytest.raises(FormatError, match="'clip_it'"):
        narrow(np.zeros(3, dtype=np.int64), 8, True, overflow="clip_it")


def test_bad_formats_and_widths():
    with pytest.raises(FormatError, match="'Q6,9'"):
        quantize(np.zeros(3), "Q6,9", rounding="floor", overflow="saturate")
    with pytest.raises(FormatError, match="unsigned 64-bit"):
        quantize(np.zeros(3), "UQ0.64", rounding="floor", overflow="saturate")
    with pytest.raises(FormatError, match="65 bits"):
        accumulate(np.zeros(3, dtype=np.int64), 65, overflow="wrap")
    with pytest.raises(FormatError, match="0 bits"):
        narrow(np.zeros(3, dtype=np.int64), 0, True, overflow="wrap")
    with pytest.raises(FormatError, match="at most 63"):
        saturating_sum(np.zeros(3, dtype=np.int64), 64)
    with pytest.raises(FormatError, match="needs a 65-bit word"):
        mul(np.zeros(1, dtype=np.int64), "Q16.16", np.zeros(1, dtype=np.int64), "Q31.0")
    with pytest.raises(FormatError, match="src_frac must be an int"):
        rescale(np.zeros(1, dtype=np.int64), 1.5, "Q2.5", rounding="floor", overflow="wrap")


def test_codes_outside_their_format():
    with pytest.raises(QuantizationError, match=r"code 200 is outside Q0\.7 \[-128, 127\]"):
        requantize(np.array([1, 200]), "Q0.7", "Q1.6", rounding="floor", overflow="saturate")
    with pytest.raises(QuantizationError, match="code -1 is outside UQ0.8"):
        mul(np.array([-1]), "UQ0.8", np.array([1]), "Q0.7")
    with pytest.raises(QuantizationError, match="code 9 is outside"):
        add(np.array([1]), "Q1.1", np.array([9]), "Q1.1")


def test_wrong_dtypes():
    with pytest.raises(QuantizationError, match="expected an integer array, got dtype float64"):
        requantize(np.array([1.0]), "Q0.7", "Q1.6", rounding="floor", overflow="saturate")
    with pytest.raises(QuantizationError, match="expected real numbers"):
        quantize(np.array(["a"]), "Q0.7", rounding="floor", overflow="saturate")
    with pytest.raises(QuantizationError, match="expected integers"):
        narrow(np.array([1.5, 2], dtype=object), 8, True, overflow="wrap")
    with pytest.raises(QsimError, match="2\\*\\*62"):
        saturating_sum(np.array([2**62 + 1, 0]), 32)
    with pytest.raises(QuantizationError, match="dequantize"):
        dequantize(np.array([0.5]), "Q0.7")


def test_scalars_and_empty_arrays():
    assert quantize(0.5, "Q0.7", rounding="floor", overflow="saturate").tolist() == 64
    assert quantize(np.zeros((0, 3)), "Q0.7", rounding="floor", overflow="saturate").shape == (0, 3)
    assert narrow(np.zeros(0, dtype=np.int64), 8, True, overflow="wrap").shape == (0,)
    assert saturating_sum(np.zeros((2, 0), dtype=np.int64), 8).tolist() == [0, 0]
