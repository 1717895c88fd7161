"""Compiled fused kernels (qsim.tflite._mac, _numba.softmax_rows) == their Python-int twins
(qsim.tflite.ref) composed with the executor's narrowing sites, codes AND counters.

Every draw includes narrow accumulators (events at the acc site, both wrap and saturate),
multipliers that are exact powers of two (ties in SRDHM and RDBPOT), single and double
rounding, activation bounds that bite, and the int8 / uint8 extremes.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qsim.tflite import _mac, arith, ops, ref
from qsim.tflite._numba import softmax_rows
from tests.tflite.test_tflite_ops import pool_geometry

BIG = 1 << 62


class Sites:
    """Python-int reference of the three counters: events and (min, max) per site."""

    def __init__(self) -> None:
        self.ev = {"acc": 0, "act": 0, "requant": 0}
        self.seen: dict[str, list[int]] = {"acc": [], "act": [], "requant": []}

    def site(self, name: str, v: int, lo: int, hi: int) -> int:
        self.seen[name].append(v)
        if v < lo or v > hi:
            self.ev[name] += 1
        return ref.clamp(v, lo, hi)

    def check(self, st_: np.ndarray, sites=("acc", "act", "requant")) -> None:
        for k, name in enumerate(("acc", "act", "requant")):
            if name not in sites:
                continue
            assert int(st_[3 * k]) == self.ev[name], name
            assert (int(st_[3 * k + 1]), int(st_[3 * k + 2])) == (min(self.seen[name]), max(self.seen[name])), name


def tail_ref(sites: Sites, v: int, acc_bits: int, saturate: bool, requant, out_zp: int, act, qrange) -> int:
    """The executor's tail on one exact accumulator (narrow_acc -> requantize -> finish)."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    sites.seen["acc"].append(v)
    if v < lo or v > hi:
        sites.ev["acc"] += 1
        v = ref.clamp(v, lo, hi) if saturate else ref.wrap(v, acc_bits)
    r = requant(v) + out_zp
    if act != (None, None):
        r = sites.site("act", r, -BIG if act[0] is None else act[0], BIG if act[1] is None else act[1])
    return sites.site("requant", r, *qrange)


def draw_act(data, qmin, qmax):
    lo = data.draw(st.one_of(st.none(), st.integers(qmin - 3, qmax)))
    hi = data.draw(st.one_of(st.none(), st.integers(qmin if lo is None else lo, qmax + 3)))
    return lo, hi


def draw_multipliers(data, n):
    reals = data.draw(st.lists(st.one_of(st.sampled_from([0.5, 0.25, 2.0**-9, 1.0, 3.0]), st.floats(1e-6, 4.0)),
                               min_size=n, max_size=n))
    single = data.draw(st.booleans())
    qs = [arith.quantize_multiplier(r, single_rounding=single) for r in reals]
    return np.array([q for q, _ in qs], np.int64), np.array([s for _, s in qs], np.int64), single


def geometry(data, h, w, k):
    stride = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)))
    dil = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    same = data.draw(st.booleans())
    outs, pads = [], []
    for size, kk, s, d in zip((h, w), k, stride, dil):
        if same:
            o, b, _ = ops.same_padding(size, kk, s, d)
        else:
            o, b = ops.valid_out(size, kk, s, d), 0
        outs.append(o)
        pads.append(b)
    return stride, dil, tuple(pads), tuple(outs)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_conv_fused_equals_reference(data):
    n, h, w = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 7)), data.draw(st.integers(1, 9))
    groups = data.draw(st.sampled_from([1, 1, 2]))
    fic = data.draw(st.integers(1, 3))
    ic, oc = groups * fic, groups * data.draw(st.integers(1, 5))
    k = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    stride, dil, pads, outs = geometry(data, h, w, k)
    if min(outs) < 1:
        return
    uint8 = data.draw(st.booleans())
    lo, hi = (0, 255) if uint8 else (-128, 127)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(lo, hi + 1, (n, h, w, ic))
    x.flat[0] = lo
    wt = rng.integers(lo, hi + 1, (oc, *k, fic))
    wt.flat[0] = lo
    bias = rng.integers(-(2**20), 2**20, oc)
    in_zp = int(rng.integers(lo, hi + 1))
    w_zp = int(rng.integers(lo, hi + 1)) if uint8 else 0
    acc_bits = data.draw(st.sampled_from([8, 12, 16, 24, 32, 64]))
    saturate = data.draw(st.booleans())
    out_zp = int(rng.integers(lo, hi + 1))
    act = draw_act(data, lo, hi)
    float_requant = not uint8 and data.draw(st.booleans())
    q, sh, single = draw_multipliers(data, oc)
    eff = np.array([data.draw(st.floats(1e-6, 2.0)) for _ in range(oc)])
    dtype = data.draw(st.sampled_from([ops.exact_float_dtype(wt, w_zp, 255), np.float64]))

    x_c = x.astype(np.uint8 if uint8 else np.int8)
    wf = np.ascontiguousarray((wt - w_zp).astype(dtype).transpose(1, 2, 3, 0))
    out = np.empty((n, *outs, oc), x_c.dtype)
    st_ = _mac.new_stats()
    chan = _mac.chan_params(bias, q, sh, oc)
    bound = ops.sum_bound(wt, w_zp, max(abs(lo - in_zp), abs(hi - in_zp)), 0)
    fast = _mac.fast_double(chan, bound, acc_bits, single, float_requant)  # as the executor decides it
    tp = _mac.tail_params(acc_bits=acc_bits, saturate=saturate, single_rounding=single, out_zp=out_zp, act=act,
                          qrange=(lo, hi), float_requant=float_requant, fast_double=fast)
    geom = np.array([*stride, *dil, *pads, 0], np.int64)  # layout 0: w [KH, KW, FIC, OC]
    _mac.conv_fused(x_c, dtype(in_zp), wf, geom, chan, eff, tp, out, st_)

    accs = ref.conv2d(x.tolist(), in_zp, wt.tolist(), w_zp, bias.tolist(), stride, dil, pads, outs)
    sites = Sites()
    want = [[[[tail_ref(sites, a, acc_bits, saturate,
                        (lambda v, j=j: ref.clamp(ref.round_away(Fraction(float(v) * eff[j])),
                                                  ref.INT32_MIN, ref.INT32_MAX)) if float_requant
                        else (lambda v, j=j: ref.mbqm(v, int(q[j]), int(sh[j]), single)),
                        out_zp, act, (lo, hi))
                for j, a in enumerate(px)] for px in row] for row in img] for img in accs]
    assert out.tolist() == want
    sites.check(st_, ("acc", "requant") + (("act",) if act != (None, None) else ()))


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_depthwise_fused_equals_reference(data):
    n, h, w, ic = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 7)), data.draw(st.integers(1, 7)), data.draw(st.integers(1, 4))
    mult = data.draw(st.integers(1, 3))
    oc = ic * mult
    k = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    stride, dil, pads, outs = geometry(data, h, w, k)
    if min(outs) < 1:
        return
    uint8 = data.draw(st.booleans())
    lo, hi = (0, 255) if uint8 else (-128, 127)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(lo, hi + 1, (n, h, w, ic))
    wt = rng.integers(lo, hi + 1, (1, *k, oc))
    bias = rng.integers(-(2**16), 2**16, oc)
    in_zp = int(rng.integers(lo, hi + 1))
    w_zp = int(rng.integers(lo, hi + 1)) if uint8 else 0
    acc_bits = data.draw(st.sampled_from([8, 12, 32, 64]))
    saturate = data.draw(st.booleans())
    out_zp = int(rng.integers(lo, hi + 1))
    act = draw_act(data, lo, hi)
    q, sh, single = draw_multipliers(data, oc)
    dtype = ops.exact_float_dtype(wt, w_zp, 255, 3)

    x_c = x.astype(np.uint8 if uint8 else np.int8)
    out = np.empty((n, *outs, oc), x_c.dtype)
    st_ = _mac.new_stats()
    wf = np.ascontiguousarray((wt - w_zp).astype(dtype)[0])
    chan = _mac.chan_params(bias, q, sh, oc)
    bound = ops.sum_bound(wt, w_zp, max(abs(lo - in_zp), abs(hi - in_zp)), 3)
    tp = _mac.tail_params(acc_bits=acc_bits, saturate=saturate, single_rounding=single, out_zp=out_zp, act=act,
                          qrange=(lo, hi), fast_double=_mac.fast_double(chan, bound, acc_bits, single, False))
    geom = np.array([*stride, *dil, *pads, mult], np.int64)
    _mac.depthwise_fused(x_c, dtype(in_zp), wf, geom, chan, np.zeros(oc), tp, out, st_)

    accs = ref.depthwise(x.tolist(), in_zp, wt.tolist(), w_zp, bias.tolist(), stride, dil, pads, outs, mult)
    sites = Sites()
    want = [[[[tail_ref(sites, a, acc_bits, saturate, lambda v, j=j: ref.mbqm(v, int(q[j]), int(sh[j]), single),
                        out_zp, act, (lo, hi))
                for j, a in enumerate(px)] for px in row] for row in img] for img in accs]
    assert out.tolist() == want
    sites.check(st_, ("acc", "requant") + (("act",) if act != (None, None) else ()))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-128, 127), st.integers(-128, 127)), min_size=1, max_size=30),
       st.integers(-128, 127), st.integers(-128, 127), st.integers(-128, 127),
       st.sampled_from([0.25, 0.5, 0.1, 0.77, 0.03125]), st.sampled_from([0.25, 0.5, 0.3, 0.03125]),
       st.sampled_from([0.5, 0.03, 0.0078125]), st.booleans(), st.booleans(), st.data())
def test_binary_fused_equals_reference(pairs, zp1, zp2, out_zp, s1, s2, so, single, mul, data):
    x1 = np.array([p[0] for p in pairs] + [-128, 127], np.int8)
    x2 = np.array([p[1] for p in pairs] + [127, -128], np.int8)
    act = draw_act(data, -128, 127)
    if mul:
        m1 = m2 = (0, 0)
        m = arith.quantize_multiplier(s1 * s2 / so, single_rounding=single)

        def exact(a, b):
            return ref.mul(a, zp1, b, zp2, *m, single)
    else:
        tm = 2 * max(s1, s2)
        m1, m2 = arith.quantize_multiplier(s1 / tm), arith.quantize_multiplier(s2 / tm)
        m = arith.quantize_multiplier(tm / (2**20 * so))

        def exact(a, b):
            return ref.add(a, zp1, m1, b, zp2, m2, m, 20, single)
    out = np.empty(x1.size, np.int8)
    st_ = _mac.new_stats()
    tp = _mac.tail_params(single_rounding=single, out_zp=out_zp, act=act)
    _mac.binary_fused(x1, x2, _mac.binary_params(mul, zp1, m1, zp2, m2, m, 20), tp, out, st_)
    sites = Sites()
    want = []
    for a, b in zip(x1.tolist(), x2.tolist()):
        r = exact(a, b) + out_zp
        if act != (None, None):
            r = sites.site("act", r, -BIG if act[0] is None else act[0], BIG if act[1] is None else act[1])
        want.append(sites.site("requant", r, -128, 127))
    assert out.tolist() == want
    sites.check(st_, ("requant",) + (("act",) if act != (None, None) else ()))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 7), st.integers(1, 7), st.integers(1, 4), st.integers(1, 4), st.integers(1, 3),
       st.booleans(), st.booleans(), st.sampled_from([6, 8, 10, 32, 64]), st.booleans(), st.integers(0, 2**32 - 1),
       st.data())
def test_pool_fused_equals_reference(h, w, kh, kw, s, same, average, acc_bits, saturate, seed, data):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (1, h, w, 2))
    x[0, 0, 0, 0] = -128
    outs, pads = pool_geometry(h, w, kh, kw, s, same)
    if min(outs) < 1:
        return
    act = draw_act(data, -128, 127)
    out = np.empty((1, *outs, 2), np.int8)
    st_ = _mac.new_stats()
    tp = _mac.tail_params(acc_bits=acc_bits, saturate=saturate, act=act)
    _mac.pool_fused(x.astype(np.int8), np.array([kh, kw, s, s, *pads, average], np.int64), tp, out, st_)
    sites = Sites()
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    want = np.zeros(out.shape, np.int64)
    wins = [ref.pool_windows(x[0, :, :, c].tolist(), (kh, kw), (s, s), pads, outs) for c in range(2)]
    for oy in range(outs[0]):
        for ox in range(outs[1]):
            for c in range(2):
                cells = wins[c][oy][ox]
                if average:
                    v = sum(cells)
                    sites.seen["acc"].append(v)
                    if v < lo or v > hi:
                        sites.ev["acc"] += 1
                        v = ref.clamp(v, lo, hi) if saturate else ref.wrap(v, acc_bits)
                    r = ref.round_away(Fraction(v, len(cells)))
                else:
                    r = max(cells)
                if act != (None, None):
                    r = sites.site("act", r, -BIG if act[0] is None else act[0], BIG if act[1] is None else act[1])
                want[0, oy, ox, c] = sites.site("requant", r, -128, 127)
    assert out.tolist() == want.tolist()
    sites.check(st_, (("acc",) if average else ()) + ("requant",) + (("act",) if act != (None, None) else ()))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.integers(-128, 127), min_size=1, max_size=40), min_size=1, max_size=3),
       st.floats(0.001, 2.0), st.floats(0.1, 2.0), st.booleans())
def test_softmax_rows_and_table_equal_reference(rows, in_s, beta, uint8):
    real = min(float(np.float32(beta)) * float(np.float32(in_s)) * 2.0**26, 2.0**31 - 1)
    q, ls = arith.quantize_multiplier(real)
    if ls < 0:
        return
    diff_min = -math.floor(31.0 * 2**26 / 2**ls)
    c = min(len(r) for r in rows)
    rows = [r[:c] for r in rows]
    rows[0][0] = -128  # the widest d: -255 once the row max is 127
    rows[0][-1] = 127 if c > 1 else rows[0][-1]
    qmin, qmax = (0, 255) if uint8 else (-128, 127)
    x = (np.array(rows) + (128 if uint8 else 0)).astype(np.uint8 if uint8 else np.int8)
    table = ops.softmax_exp_table(q, ls, 255)
    used = range(min(255, -diff_min) + 1)  # entries with d >= diff_min (the others are never read)
    assert [int(table[k]) for k in used] == [ref.exp_on_negative_values(ref.srdhm(-k * 2**ls, q)) for k in used]
    out = np.empty(x.shape, x.dtype)
    softmax_rows(x, table, diff_min, qmin, qmax, out)
    want = [ref.softmax_row(r, q, ls, diff_min, qmin, qmax) for r in x.astype(np.int64).tolist()]
    assert out.tolist() == want
    assert ops.softmax(x, q, ls, diff_min, qmin, qmax, table).tolist() == want


def test_chan_params_refuses_what_the_tail_does_not_handle():
    """The compiled tail drops SRDHM's saturating case, so q must be in [0, 2^31), shift <= 30."""
    import pytest

    for q, s in ((-(2**31), 0), (2**31, 0), (2**30, 31)):
        with pytest.raises(ValueError):
            _mac.chan_params(None, q, s, 2)
    c = _mac.chan_params([5, -5], 2**30, -3, 2)
    assert c[_mac.C_BIAS].tolist() == [5, -5] and c[_mac.C_MASK].tolist() == [7, 7] and c[_mac.C_HALF].tolist() == [3, 3]


def test_fast_double_only_when_proved():
    """`fast_double` (no narrowing, no int32 wrap) needs every |sum + bias| inside the word,
    acc_bits <= 32, no left shift and double rounding."""
    chan = _mac.chan_params([100, -100], 2**30, -3, 2)
    bound = np.array([2**15 - 101, 2**15 - 101])
    assert _mac.fast_double(chan, bound, 16, False, False)
    assert not _mac.fast_double(chan, bound + 1, 16, False, False)  # 2^15 would be an event
    assert not _mac.fast_double(chan, bound, 16, True, False)
    assert not _mac.fast_double(chan, bound, 16, False, True)
    assert not _mac.fast_double(chan, bound, 40, False, False)
    assert not _mac.fast_double(_mac.chan_params([0, 0], 2**30, 1, 2), bound, 16, False, False)  # left shift


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_pointwise_dot_layout_equals_reference(data):
    """Layout 1 (deep pointwise convs as dot products, w [1, 1, OC, IC]) == ref.conv2d + tail."""
    n, h, w = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 9))
    ic, oc = data.draw(st.integers(1, 80)), data.draw(st.integers(1, 7))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-128, 128, (n, h, w, ic))
    x.flat[0] = -128
    wt = rng.integers(-128, 128, (oc, 1, 1, ic))
    bias = rng.integers(-(2**20), 2**20, oc)
    in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    acc_bits = data.draw(st.sampled_from([12, 20, 32, 64]))
    saturate = data.draw(st.booleans())
    act = draw_act(data, -128, 127)
    q, sh, single = draw_multipliers(data, oc)
    dtype = ops.exact_float_dtype(wt, 0, 255)
    chan = _mac.chan_params(bias, q, sh, oc)
    fast = _mac.fast_double(chan, ops.sum_bound(wt, 0, max(abs(-128 - in_zp), abs(127 - in_zp))), acc_bits, single, False)
    tp = _mac.tail_params(acc_bits=acc_bits, saturate=saturate, single_rounding=single, out_zp=out_zp, act=act,
                          fast_double=fast)
    out = np.empty((n, h, w, oc), np.int8)
    st_ = _mac.new_stats()
    wf = np.ascontiguousarray(wt.astype(dtype).transpose(1, 2, 0, 3))  # [1, 1, OC, IC]
    _mac.conv_fused(x.astype(np.int8), dtype(in_zp), wf, np.array([1, 1, 1, 1, 0, 0, 1], np.int64), chan,
                    np.zeros(oc), tp, out, st_)
    accs = ref.conv2d(x.tolist(), in_zp, wt.tolist(), 0, bias.tolist(), (1, 1), (1, 1), (0, 0), (h, w))
    sites = Sites()
    want = [[[[tail_ref(sites, a, acc_bits, saturate, lambda v, j=j: ref.mbqm(v, int(q[j]), int(sh[j]), single),
                        out_zp, act, (-128, 127))
                for j, a in enumerate(px)] for px in row] for row in img] for img in accs]
    assert out.tolist() == want
    sites.check(st_, ("acc", "requant") + (("act",) if act != (None, None) else ()))
