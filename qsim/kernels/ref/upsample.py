"""Reference bilinear upsampling: TensorFlow's half-pixel rule evaluated in Fractions.

``in = (o + 1/2) * (n_in / n_out) - 1/2``; ``lower = max(floor(in), 0)``,
``upper = min(ceil(in), n_in - 1)``, ``lerp = in - floor(in)``; rows then columns, exact;
the final value is rounded once to the output format.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from qsim.fixed.format import QFormat
from qsim.fixed.ref import narrow_one_ref, round_ref
from qsim.kernels.ref.common import Tally


def _taps(o: int, n_in: int, n_out: int):
    pos = (Fraction(o) + Fraction(1, 2)) * Fraction(n_in, n_out) - Fraction(1, 2)
    fl = math.floor(pos)
    lerp = pos - fl
    lower = max(fl, 0)
    upper = min(math.ceil(pos), n_in - 1)
    return lower, upper, lerp


def upsample_bilinear_ref(x, size, *, in_fmt: QFormat, out_fmt: QFormat, rounding, overflow):
    x = np.asarray(x)
    n, h, w, c = x.shape
    fh, fw = size
    tally = Tally()
    out = np.zeros((n, h * fh, w * fw, c), dtype=np.int64)
    for b in range(n):
        for oy in range(h * fh):
            y0, y1, ly = _taps(oy, h, h * fh)
            for ox in range(w * fw):
                x0, x1, lx = _taps(ox, w, w * fw)
                for ch in range(c):
                    def v(yy, xx, b=b, ch=ch):
                        return Fraction(int(x[b, yy, xx, ch]), 2**in_fmt.frac_bits)
                    top = v(y0, x0) * (1 - lx) + v(y0, x1) * lx
                    bot = v(y1, x0) * (1 - lx) + v(y1, x1) * lx
                    val = top * (1 - ly) + bot * ly
                    r = round_ref(val * 2**out_fmt.frac_bits, rounding)
                    tally.see(r, out_fmt.min_code, out_fmt.max_code)
                    out[b, oy, ox, ch] = narrow_one_ref(r, out_fmt.word_bits, out_fmt.signed, overflow)
    return out, tally
