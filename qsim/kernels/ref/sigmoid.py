"""Reference fixed-point sigmoid: every code through 80-digit `decimal` arithmetic."""
from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np

from qsim.fixed.format import QFormat
from qsim.fixed.ref import narrow_one_ref, round_ref
from qsim.kernels.ref.common import Tally


def sigmoid_ref(x, *, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow):
    x = np.asarray(x)
    tally = Tally()
    out = np.zeros(x.shape, dtype=np.int64)
    with localcontext() as ctx:
        ctx.prec = 80
        for idx in np.ndindex(*x.shape):
            v = Decimal(int(x[idx])) / Decimal(2) ** in_fmt.frac_bits
            s = 1 / (1 + Fraction((-v).exp()))  # exact after exp: 1 - s keeps its digits too
            r = round_ref(s * 2**out_fmt.frac_bits, rounding)
            tally.see(r, out_fmt.min_code, out_fmt.max_code)
            out[idx] = narrow_one_ref(r, out_fmt.word_bits, out_fmt.signed, overflow)
    return out, tally
