"""Reference product (see `qsim.kernels.multiply`): exact Fractions, one `round_ref`, a `Tally`."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from qsim.fixed.format import QFormat
from qsim.fixed.ref import narrow_one_ref, round_ref
from qsim.kernels.ref.common import Tally


def multiply_ref(inputs, in_fmts, *, out_fmt: QFormat, rounding, overflow):
    """Codes and the ``mul`` `Tally`: each output element from the operands' elements at its
    index, an operand's size-1 axis read at index 0."""
    arrs = [np.asarray(a) for a in inputs]
    shape = tuple(max(sizes) for sizes in zip(*(a.shape for a in arrs)))
    tally = Tally()
    out = np.zeros(shape, dtype=np.int64)
    for idx in np.ndindex(*shape):
        value = Fraction(1)
        for a, f in zip(arrs, in_fmts):
            at = tuple(i if d != 1 else 0 for i, d in zip(idx, a.shape))
            value *= Fraction(int(a[at]), 2**f.frac_bits)
        r = round_ref(value * 2**out_fmt.frac_bits, rounding)
        tally.see(r, out_fmt.min_code, out_fmt.max_code)
        out[idx] = narrow_one_ref(r, out_fmt.word_bits, out_fmt.signed, overflow)
    return out, tally
