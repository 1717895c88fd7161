"""One KPU layer: the spec's worked example, hand vectors per stage, hypothesis against the Python-int reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsim.errors import InputError, KmodelError
from qsim.k210.fields import ActTable, BatchNorm, LayerArgs
from qsim.k210.kpu import (
    ACT_ROUNDINGS,
    ALU_MAX,
    KpuLayer,
    KpuSwitches,
    act_stage,
    bn_stage,
    conv_stage,
    pool_stage,
)
from qsim.k210.ref import kpu_ref

NEG = -(1 << 35)


def relu_table(y_mul=95, shift=20, bias=3, start=0):
    xs = np.full(16, (1 << 35) - 14, np.int64)
    xs[0], xs[1] = NEG, start
    return ActTable(xs, np.r_[0, y_mul, np.zeros(14, np.int64)], np.r_[0, shift, np.zeros(14, np.int64)],
                    np.r_[0, bias, np.full(14, 255, np.int64)])


def test_worked_example_section_1_11():
    x = np.array([[[200]], [[10]]], np.uint8)
    w = np.array([[[[255]], [[0]]]], np.uint8)
    a = conv_stage(x, w, depthwise=False, pad_value=10, arg_x=-128, shr_x=0, arg_w=-10, shr_w=0, arg_add=1280)
    assert a.tolist() == [[[24130]]]  # P=51000, -26880, -2550, +2560
    b = bn_stage(a, BatchNorm(np.array([1_500_000]), np.array([15]), np.array([-3000])))
    assert b.tolist() == [[[1_101_583]]]
    z, pre = act_stage(b, relu_table())
    assert z.tolist() == [[[103]]] and pre.tolist() == [[[103]]]  # T=104,650,385, /2^20 = 99.80 -> 100, +3
    # any B <= 0 selects segment 0 -> 0 (ReLU)
    z0, _ = act_stage(np.array([[[0, -5, 1]]]), relu_table())
    assert z0.tolist() == [[[0, 0, 3]]]  # B=1: T=95, 95/2^20 rounds to 0, + bias 3


def test_conv_shifts_floor_and_depthwise_group():
    # 1x1 depthwise: G = 1, shifts floor toward -inf
    x = np.array([[[3]], [[4]]], np.uint8)
    w = np.array([[[[5]]], [[[7]]]], np.uint8)
    a = conv_stage(x, w, depthwise=True, pad_value=0, arg_x=-3, shr_x=1, arg_w=-1, shr_w=1, arg_add=11)
    # o=0: 15 + floor(-9/2) + floor(-5/2) + 11 = 15 - 5 - 3 + 11 = 18
    # o=1: 28 + floor(-12/2) + floor(-7/2) + 11 = 28 - 6 - 4 + 11 = 29
    assert a.ravel().tolist() == [18, 29]


def test_conv_3x3_border_uses_pad_value():
    x = np.zeros((1, 1, 1), np.uint8)
    w = np.ones((1, 1, 3, 3), np.uint8)
    a = conv_stage(x, w, depthwise=False, pad_value=7, arg_x=0, shr_x=0, arg_w=0, shr_w=0, arg_add=0)
    assert a.ravel().tolist() == [8 * 7]  # the 8 border taps read pad_value


def test_bn_floor_on_negative():
    b = bn_stage(np.array([[[-3, 3]]]), BatchNorm(np.array([1]), np.array([1]), np.array([0])))
    assert b.ravel().tolist() == [-2, 1]


@pytest.mark.parametrize("t_value,shift,expected", [
    # nncase banker rule as implemented (k210-kpu.md §1.7): ties to even for T >= 0, odd for T < 0
    (2, 2, 0), (6, 2, 2), (10, 2, 2), (14, 2, 4), (3, 2, 1), (5, 2, 1),
    (-1, 2, -2), (-2, 2, -2), (-6, 2, -2), (-3, 2, -1), (-5, 2, -3),  # -5/4 -> -3 (!)
])
def test_nncase_activation_rounding_vectors(t_value, shift, expected):
    # one live segment with x_start = -2^35 + 0 so that T = (B - x_start) * 1 -> use B relative start
    xs = np.full(16, (1 << 35) - 1, np.int64)
    xs[0] = -(1 << 35)
    xs[1] = 0
    table = ActTable(xs, np.r_[0, 1, np.zeros(14, np.int64)], np.r_[0, shift, np.zeros(14, np.int64)],
                     np.r_[0, 100, np.zeros(14, np.int64)])
    # T = B - 0 for B > 0; for negative T use a segment with a negative slope
    if t_value > 0:
        z, pre = act_stage(np.array([[[t_value]]]), table)
    else:
        table.y_mul[1] = -1
        table.x_start[1] = -1000
        z, pre = act_stage(np.array([[[-1000 - t_value]]]), table)  # B - x_start = -t, times -1 = t
    assert int(pre.ravel()[0]) == expected + 100
    assert kpu_ref.round_act(t_value, shift, "nncase") == expected


@pytest.mark.parametrize("mode,t_value,expected", [
    ("half_even", 2, 0), ("half_even", 6, 2), ("half_even", -2, 0), ("half_even", -6, -2), ("half_even", -3, -1),
    ("half_up", 2, 1), ("half_up", 6, 2), ("half_up", -2, 0), ("half_up", -6, -1), ("half_up", -3, -1),
])
def test_other_roundings_on_ties(mode, t_value, expected):
    xs = np.full(16, (1 << 35) - 1, np.int64)
    xs[0], xs[1] = -(1 << 35), -1000
    slope = 1 if t_value > 0 else -1  # B must lie above x_start[1]: negative T needs a negative slope
    table = ActTable(xs, np.r_[0, slope, np.zeros(14, np.int64)], np.r_[0, 2, np.zeros(14, np.int64)],
                     np.r_[0, 100, np.zeros(14, np.int64)])
    _, pre = act_stage(np.array([[[-1000 + slope * t_value]]]), table, KpuSwitches(act_rounding=mode))
    assert int(pre.ravel()[0]) == expected + 100


def test_segment_compare_strict_vs_inclusive():
    xs = np.full(16, (1 << 35) - 1, np.int64)
    xs[0], xs[1] = -(1 << 35), 10
    table = ActTable(xs, np.zeros(16, np.int64), np.zeros(16, np.int64), np.r_[5, 9, np.zeros(14, np.int64)])
    strict, _ = act_stage(np.array([[[10, 11]]]), table)
    incl, _ = act_stage(np.array([[[10, 11]]]), table, KpuSwitches(segment_compare="inclusive"))
    assert strict.ravel().tolist() == [5, 9] and incl.ravel().tolist() == [9, 9]


def test_activation_clamps_to_uint8():
    table = relu_table(y_mul=1, shift=0, bias=200)
    z, pre = act_stage(np.array([[[100]]]), table)
    assert z.ravel().tolist() == [255] and pre.ravel().tolist() == [300]


def test_pool_types_hand_vectors():
    z = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    assert pool_stage(z, 0).tolist() == z.tolist()
    assert pool_stage(z, 1).tolist() == [[[5, 7], [13, 15]]]
    assert pool_stage(z, 2).tolist() == [[[2, 4], [10, 12]]]  # floor(10/4)=2, floor(18/4)=4
    assert pool_stage(z, 2, KpuSwitches(mean_rounding="half_up")).tolist() == [[[3, 5], [11, 13]]]
    assert pool_stage(z, 3).tolist() == [[[15]]]
    assert pool_stage(z, 4).tolist() == [[[7]]]  # floor(120/16)
    assert pool_stage(z, 5).tolist() == [[[0, 2], [8, 10]]]
    assert pool_stage(z, 6).tolist() == [[[1, 3], [9, 11]]]
    assert pool_stage(z, 7).tolist() == [[[0]]]
    # stride-1 pools: last row/column: max counts outside taps as 0, mean replicates the edge
    assert pool_stage(z, 9)[0, 3].tolist() == [13, 14, 15, 15]
    assert pool_stage(z, 8)[0, 3, 3] == 15
    odd = np.arange(15, dtype=np.uint8).reshape(1, 3, 5)
    assert pool_stage(odd, 5).shape == (1, 1, 2)  # floor(in / stride)


def test_switch_validation():
    with pytest.raises(InputError, match="act_rounding"):
        KpuSwitches(act_rounding="banker")
    with pytest.raises(KmodelError, match="pool_type"):
        pool_stage(np.zeros((1, 2, 2), np.uint8), 12)


def _layer(ic, oc, h, w, k, depthwise, pool, rng):
    args = LayerArgs(depth_wise_layer=int(depthwise), i_ch_num=ic - 1, o_ch_num=oc - 1, i_row_wid=w - 1,
                     i_col_high=h - 1, kernel_type=0 if k == 1 else 1, pool_type=pool,
                     pad_value=int(rng.integers(0, 256)), arg_x=int(rng.integers(-(1 << 23), 1 << 23)),
                     shr_x=int(rng.integers(0, 16)), arg_w=int(rng.integers(-(1 << 23), 1 << 23)),
                     shr_w=int(rng.integers(0, 16)), arg_add=int(rng.integers(-(1 << 30), 1 << 30)))
    from qsim.k210.kpu import pool_output_size
    args.o_col_high = pool_output_size(h, pool) - 1
    args.o_row_wid = pool_output_size(w, pool) - 1
    bn = BatchNorm(rng.integers(-(1 << 23), 1 << 23, oc), rng.integers(0, 16, oc), rng.integers(-(1 << 31), 1 << 31, oc))
    xs = np.sort(rng.integers(-(1 << 35) + 1, 1 << 35, 16))
    if rng.integers(0, 2):
        xs[0] = -(1 << 35)
    act = ActTable(xs, rng.integers(-(1 << 15), 1 << 15, 16), rng.integers(0, 44, 16), rng.integers(0, 256, 16))
    wts = rng.integers(0, 256, oc * (1 if depthwise else ic) * k * k).astype(np.uint8)
    return KpuLayer.from_registers(args, bn, act, wts)


@settings(max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), ic=st.integers(1, 4), h=st.integers(1, 6), w=st.integers(1, 6),
       k=st.sampled_from([1, 3]), depthwise=st.booleans(), pool=st.integers(0, 9),
       compare=st.sampled_from(["strict", "inclusive"]), rounding=st.sampled_from(ACT_ROUNDINGS),
       mean_rounding=st.sampled_from(["floor", "half_up"]), extreme=st.booleans())
def test_layer_matches_python_int_reference(seed, ic, h, w, k, depthwise, pool, compare, rounding,
                                            mean_rounding, extreme):
    rng = np.random.default_rng(seed)
    oc = ic if depthwise else int(rng.integers(1, 4))
    if pool and (h < 4 or w < 4):
        h, w = max(h, 4), max(w, 4)
    layer = _layer(ic, oc, h, w, k, depthwise, pool, rng)
    x = rng.integers(0, 256, (ic, h, w)).astype(np.uint8)
    if extreme:  # min/max codes everywhere
        x = np.where(rng.integers(0, 2, x.shape) == 1, 255, 0).astype(np.uint8)
        layer.weights[:] = np.where(rng.integers(0, 2, layer.weights.shape) == 1, 255, 0)
    sw = KpuSwitches(segment_compare=compare, act_rounding=rounding, mean_rounding=mean_rounding)
    keep: dict = {}
    counters: dict = {}
    out = layer.run(x, sw, counters=counters, keep=keep)
    a = layer.args
    a_ref = kpu_ref.conv_ref(x.tolist(), layer.weights.tolist(), layer.args.depthwise, a.pad_value, a.arg_x,
                             a.shr_x, a.arg_w, a.shr_w, a.arg_add)
    assert keep["A"].tolist() == a_ref
    b_ref = kpu_ref.bn_ref(a_ref, layer.bn.mul.tolist(), layer.bn.shift.tolist(), layer.bn.add.tolist())
    assert keep["B"].tolist() == b_ref
    z_ref = kpu_ref.act_ref(b_ref, layer.act, compare, rounding)
    assert keep["Z"].tolist() == z_ref
    assert out.tolist() == kpu_ref.pool_ref(z_ref, pool, mean_rounding)
    # overflow counting at the 36-bit ALU: events = values outside int36
    n_out = sum(1 for plane in a_ref for row in plane for v in row if not -(1 << 35) <= v <= ALU_MAX)
    assert counters["acc"].events == n_out


def _counter_dicts(counters: dict) -> dict:
    return {site: c.to_dict() for site, c in counters.items()}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ic=st.integers(1, 40), hw=st.sampled_from([(1, 1), (3, 5), (37, 29), (64, 70)]),
       k=st.sampled_from([1, 3]), depthwise=st.booleans(), pool=st.sampled_from([0, 1, 2, 5]),
       compare=st.sampled_from(["strict", "inclusive"]), rounding=st.sampled_from(ACT_ROUNDINGS),
       wrap=st.booleans(), extreme=st.booleans())
def test_fused_pass_equals_the_stages(seed, ic, hw, k, depthwise, pool, compare, rounding, wrap, extreme):
    """`run` without `keep` computes stages A-C in one pass (GEMM or per-channel sums, then
    corrections, BN, activation, counters): the same codes and counters as the stages one
    after another, over maps large enough for several chunks, with and without ALU wrap."""
    rng = np.random.default_rng(seed)
    h, w = hw
    oc = ic if depthwise else int(rng.integers(1, 40))
    if pool and (h < 4 or w < 4):
        h, w = max(h, 4), max(w, 4)
    layer = _layer(ic, oc, h, w, k, depthwise, pool, rng)
    x = rng.integers(0, 256, (ic, h, w)).astype(np.uint8)
    if extreme:  # min/max codes everywhere: large sums, ALU events
        x = np.where(rng.integers(0, 2, x.shape) == 1, 255, 0).astype(np.uint8)
        layer.weights[:] = np.where(rng.integers(0, 2, layer.weights.shape) == 1, 255, 0)
    sw = KpuSwitches(segment_compare=compare, act_rounding=rounding, alu_overflow="wrap" if wrap else "exact")
    staged_counters: dict = {}
    fused_counters: dict = {}
    staged = layer.run(x, sw, counters=staged_counters, keep={})
    fused = layer.run(x, sw, counters=fused_counters)
    np.testing.assert_array_equal(fused, staged)
    assert list(fused_counters) == list(staged_counters) == ["acc", "bn", "act"]
    assert _counter_dicts(fused_counters) == _counter_dicts(staged_counters)
    np.testing.assert_array_equal(layer.run(x, sw), staged)  # counting off: the same codes


@given(t=st.integers(-(1 << 50), 1 << 50), s=st.integers(0, 43), mode=st.sampled_from(ACT_ROUNDINGS))
def test_activation_rounding_matches_fraction_reference(t, s, mode):
    xs = np.full(16, np.iinfo(np.int64).max, np.int64)  # only segment 0 can match
    xs[0] = -(1 << 35)
    table = ActTable(xs, np.r_[1, np.zeros(15, np.int64)], np.r_[s, np.zeros(15, np.int64)], np.zeros(16, np.int64))
    # B - x_start = t requires B in int64: choose B = t + x_start[0]
    _, pre = act_stage(np.array([[[t - (1 << 35)]]]), table, KpuSwitches(act_rounding=mode))
    assert int(pre.ravel()[0]) == kpu_ref.round_act(t, s, mode)


def test_alu_wrap_switch_counts_and_wraps():
    # A = 255*255*9 * 1 channel ... force |A| >= 2^35 with a large arg_add
    x = np.zeros((1, 1, 1), np.uint8)
    w = np.zeros((1, 1, 1, 1), np.uint8)
    args = LayerArgs(i_ch_num=0, o_ch_num=0, arg_add=(1 << 35) + 5)
    layer = KpuLayer.from_registers(args, BatchNorm(np.array([1]), np.array([0]), np.array([0])),
                                    relu_table(y_mul=1, shift=0, bias=0), w.ravel())
    keep: dict = {}
    counters: dict = {}
    layer.run(x, KpuSwitches(alu_overflow="wrap"), counters=counters, keep=keep)
    assert counters["acc"].events == 1
    assert keep["A"].ravel().tolist() == [-(1 << 35) + 5]
