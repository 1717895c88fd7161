"""Reference conv2d / depthwise conv2d on Python ints: the definition the fast kernel must meet.

For each output element, in the hardware order used by per-step saturation::

    acc = bias << (acc_frac - bias_frac)                       # term 0
    for ky, kx, ci:                                            # row, column, input channel
        acc += x[iy, ix, ci] * w[ky, kx, ci, co]               # 0 where (iy, ix) is padding

``final`` saturation/wrap narrows the exact sum once to a signed ``acc_bits`` word;
``per_step`` clamps after every term (bias included). Then the accumulator (``acc_frac =
in_frac + w_frac`` fraction bits) is rounded to the output format and narrowed.
Returns the codes and the tallies of the ``acc`` and ``requant`` sites.
"""
from __future__ import annotations

import numpy as np

from qsim.fixed.format import QFormat
from qsim.fixed.modes import Overflow, Rounding
from qsim.fixed.ref import narrow_one_ref, word_range_ref
from qsim.kernels.ref.common import Tally, rescale_int


def conv2d_ref(x, w, bias, *, in_fmt: QFormat, w_fmt: QFormat, b_fmt: QFormat, out_fmt: QFormat,
               acc_bits: int, strides=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), depthwise: bool = False,
               rounding: Rounding, overflow: Overflow, acc_overflow: Overflow,
               acc_saturation: str = "final"):
    """Slow conv. `x` (N,H,W,Cin) codes, `w` (KH,KW,Cin,Cout) or depthwise (KH,KW,C,mult),
    `bias` (Cout,) codes or None. Returns ``(codes int64 array, {"acc": Tally, "requant": Tally})``.
    """
    rounding, overflow, acc_overflow = Rounding.parse(rounding), Overflow.parse(overflow), Overflow.parse(acc_overflow)
    x = [[[[int(v) for v in px] for px in row] for row in img] for img in np.asarray(x)]
    w = np.asarray(w)
    kh, kw, cin, k4 = w.shape
    wl = w.tolist()
    n, h, wid = len(x), len(x[0]), len(x[0][0])
    cout = cin * k4 if depthwise else k4
    sh, sw = strides
    dh, dw = dilation
    pt, pb, pl, pr = pads
    ho = (h + pt + pb - ((kh - 1) * dh + 1)) // sh + 1
    wo = (wid + pl + pr - ((kw - 1) * dw + 1)) // sw + 1
    acc_frac = in_fmt.frac_bits + w_fmt.frac_bits
    align = acc_frac - b_fmt.frac_bits
    assert align >= 0, "bias must align exactly"
    acc_lo, acc_hi = word_range_ref(acc_bits, True)
    tallies = {"acc": Tally(), "requant": Tally()}
    out = np.zeros((n, ho, wo, cout), dtype=np.int64)
    for b in range(n):
        for oy in range(ho):
            for ox in range(wo):
                for co in range(cout):
                    terms = [(int(bias[co]) if bias is not None else 0) * 2**align]
                    for ky in range(kh):
                        for kx in range(kw):
                            iy = oy * sh - pt + ky * dh
                            ix = ox * sw - pl + kx * dw
                            inside = 0 <= iy < h and 0 <= ix < wid
                            if depthwise:
                                c, m = divmod(co, k4)
                                chans = [(c, int(wl[ky][kx][c][m]))]
                            else:
                                chans = [(ci, int(wl[ky][kx][ci][co])) for ci in range(cin)]
                            for ci, wv in chans:
                                terms.append(x[b][iy][ix][ci] * wv if inside else 0)
                    if acc_saturation == "per_step" and acc_overflow is Overflow.SATURATE:
                        acc = 0
                        for t in terms:
                            acc += t
                            tallies["acc"].see(acc, acc_lo, acc_hi)
                            acc = min(max(acc, acc_lo), acc_hi)
                    else:
                        acc = sum(terms)
                        tallies["acc"].see(acc, acc_lo, acc_hi)
                        acc = narrow_one_ref(acc, acc_bits, True, acc_overflow)
                    out[b, oy, ox, co] = rescale_int(acc, acc_frac, out_fmt, rounding, overflow, tallies["requant"])
    return out, tallies
