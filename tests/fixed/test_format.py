"""QFormat: parsing, canonical str, properties, errors; the mode enums and their foreign names."""
from __future__ import annotations

import pytest
from hypothesis import given

from qsim.errors import FormatError, QsimError
from qsim.fixed import Overflow, QFormat, Rounding
from qsim.fixed.modes import FOREIGN_NAMES

from .strategies import formats


@pytest.mark.parametrize(
    "text, int_bits, frac_bits, signed, word",
    [
        ("Q6.9", 6, 9, True, 16),
        ("q6.9", 6, 9, True, 16),
        (" Q2.5 ", 2, 5, True, 8),
        ("UQ0.8", 0, 8, False, 8),
        ("Q9", 6, 9, True, 16),  # the paper's Table II: 16-bit word, 9 fraction bits
        ("Q8", 7, 8, True, 16),
        ("Q15", 0, 15, True, 16),
        ("Q0", 15, 0, True, 16),
        ("ap_fixed<16,7>", 6, 9, True, 16),
        ("ap_fixed<8,1>", 0, 7, True, 8),
        ("ap_ufixed<8,0>", 0, 8, False, 8),
        ("ap_fixed<16,7,AP_RND,AP_SAT>", 6, 9, True, 16),
        ("Q63.0", 63, 0, True, 64),
        ("Q0.63", 0, 63, True, 64),
    ],
)
def test_parse(text, int_bits, frac_bits, signed, word):
    f = QFormat.parse(text)
    assert (f.int_bits, f.frac_bits, f.signed, f.word_bits) == (int_bits, frac_bits, signed, word)


def test_properties_q2_5():
    f = QFormat.parse("Q2.5")
    assert (f.word_bits, f.min_code, f.max_code, f.lsb) == (8, -128, 127, 1 / 32)
    assert f.range == (-4.0, 4.0 - 1 / 32)
    u = QFormat.parse("UQ0.8")
    assert (u.min_code, u.max_code, u.range) == (0, 255, (0.0, 255 / 256))
    assert str(f) == "Q2.5" and str(u) == "UQ0.8"
    assert f.ap_type == "ap_fixed<8,3>" and u.ap_type == "ap_ufixed<8,0>"


@given(formats())
def test_str_and_ap_type_round_trip(fmt):
    assert QFormat.parse(str(fmt)) == fmt
    assert QFormat.parse(fmt.ap_type) == fmt
    assert fmt.max_code - fmt.min_code == 2**fmt.word_bits - 1
    assert fmt.lsb == 2.0**-fmt.frac_bits


def test_paper_scale_choice():
    # eq. (5)-(6) of the paper write the scale 2**(n-1): Q9 would then have 8 fraction bits
    assert QFormat.paper(9) == QFormat(6, 9)
    assert QFormat.paper(9, paper_scale=True) == QFormat(7, 8)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("Q-5.3", "Q-5.3"),
        ("Q3.-1", "Q3.-1"),
        ("Q6.9.1", "Q6.9.1"),
        ("fixed16", "fixed16"),
        ("", "''"),
        ("Q40.40", "81-bit word"),
        ("Q16", "Q16"),
        ("ap_fixed<8,9>", "ap_fixed<8,9>"),
        ("ap_fixed<0,-1>", "ap_fixed<0,-1>"),
    ],
)
def test_parse_errors_name_the_text(text, needle):
    with pytest.raises(FormatError, match=None) as info:
        QFormat.parse(text)
    assert needle in str(info.value)
    assert isinstance(info.value, QsimError)


def test_negative_integer_bits():
    """Q-2.9: an 8-bit word for values within +-1/4 (small weights), ap_fixed<8,-1> in HLS."""
    f = QFormat.parse("Q-2.9")
    assert (f.word_bits, f.min_code, f.max_code, f.min_value, f.max_value) == (8, -128, 127, -0.25, 127 / 512)
    assert str(f) == "Q-2.9" and f.ap_type == "ap_fixed<8,-1>" and QFormat.parse(f.ap_type) == f
    assert QFormat.from_word(8, 9) == f
    assert str(QFormat.parse("UQ-1.9")) == "UQ-1.9" and QFormat.parse("UQ-1.9").word_bits == 8


def test_constructor_errors():
    with pytest.raises(FormatError, match="frac_bits must be >= 0, got -1"):
        QFormat(3, -1)
    with pytest.raises(FormatError, match="-1-bit word"):
        QFormat(-5, 3)
    with pytest.raises(FormatError, match="65-bit word"):
        QFormat(32, 32)
    with pytest.raises(FormatError, match="must be an int"):
        QFormat(1.5, 3)
    with pytest.raises(FormatError, match="0-bit word"):
        QFormat(0, 0, signed=False)
    with pytest.raises(FormatError, match="cannot parse"):
        QFormat.parse(16)


def test_modes_parse_and_foreign_names():
    assert Rounding.parse("half_even") is Rounding.HALF_EVEN
    assert Rounding.parse("AP_RND_CONV") is Rounding.HALF_EVEN
    assert Overflow.parse("AP_SAT") is Overflow.SATURATE
    for foreign, ours in FOREIGN_NAMES.items():
        target = Rounding.parse(foreign) if ours in {m.value for m in Rounding} else Overflow.parse(foreign)
        assert target.value == ours
    with pytest.raises(FormatError, match="'nearest'"):
        Rounding.parse("nearest")
    with pytest.raises(FormatError, match="'clipx'"):
        Overflow.parse("clipx")
