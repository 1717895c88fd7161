"""`QFormat`: a fixed-point number format.

``Qm.n`` is signed two's complement with ``m`` integer bits and ``n`` fraction bits:
word = m + n + 1 bits, value = code / 2**n, codes in [-2**(m+n), 2**(m+n) - 1].
``UQm.n`` is unsigned: word = m + n bits, codes in [0, 2**(m+n) - 1].
``m`` may be negative: ``Q-2.9`` is an 8-bit signed word holding [-1/4, 1/4) with step
2**-9, the format of a layer whose weights all lie within +-0.25 (common after BN folding:
12 of the A98's 41 kernels). With ``m >= 0`` such a layer wastes its top bits.

Accepted spellings (`QFormat.parse`):

=====================  ===========================================================
``"Q6.9"``              signed, 6 integer + 9 fraction bits (16-bit word)
``"Q-2.9"``             signed, 8-bit word, 9 fraction bits: range [-0.25, 0.25)
``"UQ0.8"``             unsigned, 8 fraction bits (8-bit word)
``"Q9"`` / ``"q9"``     the paper's Table II "Qn": a 16-bit signed word with n fraction
                        bits, i.e. ``Q(15-n).n``; ``"Q9"`` = ``Q6.9``
``"ap_fixed<16,7>"``    Vivado/hls4ml: W=16 word bits, I=7 integer bits incl. sign
                        = ``Q6.9``; ``ap_ufixed<8,0>`` = ``UQ0.8``
=====================  ===========================================================

Note on the paper's eq. (5)-(6): they write the scale as 2**(n-1); we use the standard
2**n (value = code / 2**frac_bits). With the paper's scale, its "Qn" equals our
``Q(16-n).(n-1)``; `QFormat.paper` documents the choice and `paper_scale=True` selects it.

Word-length table for exact arithmetic (apytypes-style; nothing rounds or overflows
until an explicit cast):

==========  =============================================  ===============================
operation    result integer bits                             result fraction bits
==========  =============================================  ===============================
a + b        max(a.int, b.int) + 1                           max(a.frac, b.frac)
a * b        a.int + b.int + 1 (signed x signed)            a.frac + b.frac
sum of N     int + ceil(log2 N)                              frac
==========  =============================================  ===============================

>>> f = QFormat.parse("Q2.5")
>>> (f.word_bits, f.min_code, f.max_code, f.lsb)
(8, -128, 127, 0.03125)
>>> str(f), f.min_value, f.max_value
('Q2.5', -4.0, 3.96875)
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from qsim.errors import FormatError

MAX_WORD_BITS = 64

_QMN = re.compile(r"^(U?)Q(-?\d+)\.(\d+)$", re.IGNORECASE)
_QN = re.compile(r"^Q(\d+)$", re.IGNORECASE)
_AP = re.compile(r"^ap_(u?)fixed\s*<\s*(-?\d+)\s*,\s*(-?\d+)\s*(?:,[^>]*)?>$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class QFormat:
    """A fixed-point format: `int_bits` integer bits (sign excluded), `frac_bits` fraction bits."""

    int_bits: int
    frac_bits: int
    signed: bool = True

    def __post_init__(self) -> None:
        for name in ("int_bits", "frac_bits"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise FormatError(f"QFormat {name} must be an int, got {v!r}")
        if self.frac_bits < 0:  # integer bits may be negative (module doc); fraction bits not
            raise FormatError(f"QFormat frac_bits must be >= 0, got {self.frac_bits} ({self._spell()})")
        if not 1 <= self.word_bits <= MAX_WORD_BITS:
            raise FormatError(
                f"QFormat {self._spell()} has a {self.word_bits}-bit word; "
                f"words of 1..{MAX_WORD_BITS} bits are supported"
            )

    def _spell(self) -> str:
        return f"{'' if self.signed else 'U'}Q{self.int_bits}.{self.frac_bits}"

    # --- construction -------------------------------------------------------------
    @classmethod
    def parse(cls, text: "str | QFormat") -> "QFormat":
        """Read ``Qm.n``, ``UQm.n``, the paper's ``Qn`` (16-bit word) or ``ap_[u]fixed<W,I>``."""
        if isinstance(text, QFormat):
            return text
        if not isinstance(text, str):
            raise FormatError(f"cannot parse a number format from {text!r}")
        s = text.strip()
        m = _QMN.match(s)
        if m:
            return cls(int(m.group(2)), int(m.group(3)), signed=not m.group(1))
        m = _QN.match(s)
        if m:
            return cls.paper(int(m.group(1)))
        m = _AP.match(s)
        if m:
            unsigned, word, integer = bool(m.group(1)), int(m.group(2)), int(m.group(3))
            int_bits = integer if unsigned else integer - 1
            frac_bits = word - integer
            if frac_bits < 0 or word < 1:
                raise FormatError(
                    f"{text!r}: ap_fixed with W={word}, I={integer} needs W >= 1 and I <= W "
                    "(more integer bits than the word, i.e. negative fraction bits, are not supported)"
                )
            return cls(int_bits, frac_bits, signed=not unsigned)
        raise FormatError(
            f"cannot parse number format {text!r}; expected e.g. 'Q6.9', 'UQ0.8', "
            "'Q9' (paper: 16-bit word, 9 fraction bits) or 'ap_fixed<16,7>'"
        )

    @classmethod
    def paper(cls, n: int, word_bits: int = 16, paper_scale: bool = False) -> "QFormat":
        """The paper's "Qn" (Table II): a `word_bits` signed word with n fraction bits.

        With ``paper_scale=True`` the scale is the paper's literal eq. (5)-(6), 2**(n-1),
        i.e. ``n - 1`` fraction bits.
        """
        frac = n - 1 if paper_scale else n
        if not 0 <= frac <= word_bits - 1:
            raise FormatError(f"paper format Q{n} does not fit a {word_bits}-bit signed word")
        return cls(word_bits - 1 - frac, frac, signed=True)

    @classmethod
    def from_word(cls, word_bits: int, frac_bits: int, signed: bool = True) -> "QFormat":
        """The format with a `word_bits` word and `frac_bits` fraction bits."""
        return cls(word_bits - frac_bits - (1 if signed else 0), frac_bits, signed)

    # --- properties ---------------------------------------------------------------
    @property
    def word_bits(self) -> int:
        """Total stored bits, sign included."""
        return self.int_bits + self.frac_bits + (1 if self.signed else 0)

    @property
    def min_code(self) -> int:
        """Most negative integer code (-2**(word-1) signed, 0 unsigned)."""
        return -(1 << (self.word_bits - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        """Largest integer code."""
        return (1 << (self.word_bits - (1 if self.signed else 0))) - 1

    @property
    def lsb(self) -> float:
        """Value of one code step, 2**-frac_bits."""
        return 2.0 ** -self.frac_bits

    @property
    def min_value(self) -> float:
        return self.min_code * self.lsb

    @property
    def max_value(self) -> float:
        return self.max_code * self.lsb

    @property
    def range(self) -> tuple[float, float]:
        """Representable real range ``(min_value, max_value)``."""
        return (self.min_value, self.max_value)

    @property
    def ap_type(self) -> str:
        """The Vivado/hls4ml spelling, e.g. ``ap_fixed<16,7>``."""
        if self.signed:
            return f"ap_fixed<{self.word_bits},{self.int_bits + 1}>"
        return f"ap_ufixed<{self.word_bits},{self.int_bits}>"

    def __str__(self) -> str:
        return self._spell()
