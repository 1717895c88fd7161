"""conv2d / depthwise / pointwise: the Numba kernel equals the Python-int reference exactly."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kstrategies import OVERFLOWS, ROUNDINGS, assert_tally, codes, qformats

from qsim.errors import InputError, PlanError
from qsim.fixed import QFormat
from qsim.fixed.counters import OverflowCounter
from qsim.kernels import conv as conv_mod
from qsim.kernels.conv import ConvPath, conv2d, exact_sums
from qsim.kernels.ref.conv import conv2d_ref


@st.composite
def conv_cases(draw):
    depthwise = draw(st.booleans())
    n = draw(st.integers(1, 2))
    h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    cin = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k4 = draw(st.integers(1, 2 if depthwise else 3))
    strides = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    # the output must not be empty
    if h + pads[0] + pads[1] < (kh - 1) * dilation[0] + 1 or w + pads[2] + pads[3] < (kw - 1) * dilation[1] + 1:
        pads = (kh * dilation[0], kh * dilation[0], kw * dilation[1], kw * dilation[1])
    in_fmt = draw(qformats(max_word=16))
    w_fmt = draw(qformats(max_word=12, signed=True))
    acc_frac = in_fmt.frac_bits + w_fmt.frac_bits
    b_fmt = draw(qformats(max_word=16, signed=True, max_frac=acc_frac))
    product = in_fmt.word_bits + w_fmt.word_bits
    acc_min = max(product, b_fmt.word_bits + acc_frac - b_fmt.frac_bits)
    acc_bits = draw(st.integers(acc_min, acc_min + 6))
    out_fmt = draw(qformats(max_word=16))
    x = draw(codes(in_fmt, (n, h, w, cin)))
    wt = draw(codes(w_fmt, (kh, kw, cin, k4)))
    cout = cin * k4 if depthwise else k4
    bias = draw(st.one_of(st.none(), codes(b_fmt, (cout,))))
    kwargs = dict(in_fmt=in_fmt, w_fmt=w_fmt, b_fmt=b_fmt, out_fmt=out_fmt, acc_bits=acc_bits,
                  strides=strides, pads=pads, dilation=dilation, depthwise=depthwise,
                  rounding=draw(ROUNDINGS), overflow=draw(OVERFLOWS), acc_overflow=draw(OVERFLOWS),
                  acc_saturation=draw(st.sampled_from(["final", "per_step"])))
    return x, wt, bias, kwargs


def _run(x, w, bias, kwargs):
    counters = {"acc": OverflowCounter("acc"), "requant": OverflowCounter("requant")}
    got = conv2d(x, w, bias, counters=counters, **kwargs)
    ref, tallies = conv2d_ref(x, w, bias, **{k: v for k, v in kwargs.items() if k != "path"})
    np.testing.assert_array_equal(got, ref)
    assert_tally(counters["acc"], tallies["acc"])
    assert_tally(counters["requant"], tallies["requant"])
    return got


@given(conv_cases())
def test_conv_matches_reference(case):
    _run(*case)


@settings(max_examples=60)
@given(conv_cases())
def test_int64_sums_equal_float64_sums(case):
    """The float64 (BLAS / depthwise loop) and int64 accumulations give identical sums."""
    x, w, bias, kw = case
    args = dict(strides=kw["strides"], pads=kw["pads"], dilation=kw["dilation"], depthwise=kw["depthwise"])
    a = exact_sums(x, w, **args)
    b = exact_sums(x, w, **args, use_float=False)
    assert b.dtype == np.int64
    np.testing.assert_array_equal(a, b)


def test_hand_checked_pointwise():
    """Q2.5 x Q1.6 1x1 conv, hand computed: 1.5*0.5 + (-0.25)*1.0 + bias 0.125 = 0.625."""
    f_in, f_w, f_b, f_out = (QFormat.parse(s) for s in ("Q2.5", "Q1.6", "Q3.4", "Q3.4"))
    x = np.array([48, -8]).reshape(1, 1, 1, 2)  # 1.5, -0.25
    w = np.array([32, 64]).reshape(1, 1, 2, 1)  # 0.5, 1.0
    b = np.array([2])  # 0.125
    y = conv2d(x, w, b, in_fmt=f_in, w_fmt=f_w, b_fmt=f_b, out_fmt=f_out, acc_bits=32,
               rounding="half_up", overflow="saturate", acc_overflow="saturate")
    assert y.item() == 10  # 0.625 * 16


def test_accumulator_wrap_and_saturation_by_hand():
    """Products 100, 100, -100 into a signed 8-bit accumulator (integer formats)."""
    x = np.array([100, 100, -100]).reshape(1, 1, 1, 3)
    w = np.array([1, 1, 1]).reshape(1, 1, 3, 1)
    c = dict(in_fmt=QFormat(7, 0), w_fmt=QFormat(1, 0), b_fmt=QFormat(7, 0), out_fmt=QFormat(15, 0),
             acc_bits=8, rounding="floor", overflow="saturate")
    final = conv2d(x, w, None, acc_overflow="saturate", acc_saturation="final", **c).item()
    step = conv2d(x, w, None, acc_overflow="saturate", acc_saturation="per_step", **c).item()
    wrap = conv2d(x, w, None, acc_overflow="wrap", **c).item()
    assert final == 100  # the exact sum fits
    assert step == 27    # 0, 100, 200 -> 127, 127 - 100 = 27: order matters
    assert wrap == 100   # 200 wraps to -56, -56 - 100 = -156 wraps to 100: modulo arithmetic
    x2 = np.array([100, 100, 100]).reshape(1, 1, 1, 3)
    assert conv2d(x2, w, None, acc_overflow="wrap", **c).item() == 300 - 256
    assert conv2d(x2, w, None, acc_overflow="saturate", **c).item() == 127


def test_float_path_bound_is_proved():
    """Large codes push the bound past 2**53: the int64 path takes over, still exact."""
    fx, fw = QFormat(15, 10), QFormat(13, 10)  # 26- and 24-bit words
    rng = np.random.default_rng(0)
    x = rng.integers(fx.min_code, fx.max_code, (1, 3, 3, 8))
    x[0, 0, 0, 0] = fx.min_code
    w = rng.integers(fw.min_code, fw.max_code, (3, 3, 8, 2))
    assert conv_mod.sum_abs_bound(x, w, False) >= 2**53
    got = exact_sums(x, w, strides=(1, 1), pads=(1, 1, 1, 1), dilation=(1, 1), depthwise=False)
    want = np.zeros_like(got)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).astype(object)
    for oy in range(3):
        for ox in range(3):
            for co in range(2):
                want[0, oy, ox, co] = int((xp[0, oy:oy + 3, ox:ox + 3, :] * w[..., co].astype(object)).sum())
    np.testing.assert_array_equal(got, want)


def test_beyond_int64_is_a_plan_error():
    f = QFormat(31, 0)
    x = np.full((1, 1, 1, 4), f.max_code)
    w = np.full((1, 1, 4, 1), f.max_code)
    with pytest.raises(PlanError, match="exact accumulation needs"):
        conv2d(x, w, None, in_fmt=f, w_fmt=f, b_fmt=f, out_fmt=f, acc_bits=64,
               rounding="floor", overflow="saturate", acc_overflow="wrap")


def test_bad_shapes_are_input_errors():
    f = QFormat(3, 4)
    common = dict(in_fmt=f, w_fmt=f, b_fmt=f, out_fmt=f, acc_bits=32, rounding="floor",
                  overflow="saturate", acc_overflow="wrap")
    with pytest.raises(InputError, match="channels"):
        conv2d(np.zeros((1, 4, 4, 3)), np.zeros((3, 3, 2, 4)), None, **common)
    with pytest.raises(InputError, match="NHWC"):
        conv2d(np.zeros((4, 4, 3)), np.zeros((3, 3, 3, 4)), None, **common)
    with pytest.raises(InputError, match="bias"):
        conv2d(np.zeros((1, 4, 4, 3)), np.zeros((3, 3, 3, 4)), np.zeros(3), **common)


def test_same_padding_stride2_first_layer_shape():
    """MobileNetV2's Conv1: 3x3 stride 2, 'same' (TF puts the extra pad at bottom/right)."""
    f = QFormat(6, 9)
    rng = np.random.default_rng(1)
    x = rng.integers(-512, 512, (1, 7, 6, 3))
    w = rng.integers(-512, 512, (3, 3, 3, 4))
    kwargs = dict(in_fmt=f, w_fmt=f, b_fmt=f, out_fmt=f, acc_bits=32, rounding="half_even",
                  overflow="saturate", acc_overflow="saturate", strides=(2, 2))
    got = conv2d(x, w, None, pads="same", **kwargs)
    assert got.shape == (1, 4, 3, 4)
    ref, _ = conv2d_ref(x, w, None, pads=(1, 1, 0, 1), **kwargs)
    np.testing.assert_array_equal(got, ref)


@settings(max_examples=80)
@given(conv_cases(), qformats(max_word=16), ROUNDINGS, OVERFLOWS, st.sampled_from([None, 6.0, 0.5]))
def test_fused_relu_equals_conv_then_relu_references(case, act_fmt, act_rounding, act_overflow, max_value):
    """conv2d(..., relu=spec) = relu_ref(conv2d_ref(...)): codes and all three counters."""
    from qsim.kernels.eltwise import relu_spec
    from qsim.kernels.ref.eltwise import relu_ref

    x, w, bias, kwargs = case
    spec = relu_spec(kwargs["out_fmt"], act_fmt, max_value, act_rounding, act_overflow)
    counters = {s: OverflowCounter(s) for s in ("acc", "requant", "act")}
    post, pre = conv2d(x, w, bias, counters=counters, relu=spec, keep_pre=True, **kwargs)
    ref, tallies = conv2d_ref(x, w, bias, **kwargs)
    ref_post, act_tally = relu_ref(ref, in_fmt=kwargs["out_fmt"], out_fmt=act_fmt, max_value=max_value,
                                   rounding=act_rounding, overflow=act_overflow)
    np.testing.assert_array_equal(pre, ref)
    np.testing.assert_array_equal(post, ref_post)
    assert_tally(counters["acc"], tallies["acc"])
    assert_tally(counters["requant"], tallies["requant"])
    assert_tally(counters["act"], act_tally)


@st.composite
def pointwise_cases(draw):
    """1x1 stride-1 unpadded convs: the direct (sums inside the tail, <= DIRECT_MAX_K input
    channels) and BLAS paths, with and without a fused ReLU."""
    x, w, bias, kwargs = draw(conv_cases())
    cin = draw(st.sampled_from([1, 2, 5, conv_mod.DIRECT_MAX_K, conv_mod.DIRECT_MAX_K + 1]))
    cout = draw(st.integers(1, 4))
    in_fmt, w_fmt, b_fmt = kwargs["in_fmt"], kwargs["w_fmt"], kwargs["b_fmt"]
    x = draw(codes(in_fmt, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3)), cin)))
    w = draw(codes(w_fmt, (1, 1, cin, cout)))
    bias = draw(st.one_of(st.none(), codes(b_fmt, (cout,))))
    kwargs.update(strides=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), depthwise=False)
    product = in_fmt.word_bits + w_fmt.word_bits + (cin - 1).bit_length()
    kwargs["acc_bits"] = max(kwargs["acc_bits"], draw(st.integers(product - 4, product + 2)))
    return x, w, bias, kwargs


@settings(max_examples=100)
@given(pointwise_cases(), st.booleans(), qformats(max_word=16), ROUNDINGS, OVERFLOWS)
def test_pointwise_direct_and_blas_paths(case, with_relu, act_fmt, act_rounding, act_overflow):
    from qsim.kernels.eltwise import relu_spec
    from qsim.kernels.ref.eltwise import relu_ref

    x, w, bias, kwargs = case
    counters = {s: OverflowCounter(s) for s in ("acc", "requant", "act")}
    spec = relu_spec(kwargs["out_fmt"], act_fmt, 6.0, act_rounding, act_overflow) if with_relu else None
    got = conv2d(x, w, bias, counters=counters, relu=spec, **kwargs)
    ref, tallies = conv2d_ref(x, w, bias, **kwargs)
    if with_relu:
        ref, act_tally = relu_ref(ref, in_fmt=kwargs["out_fmt"], out_fmt=act_fmt, max_value=6.0,
                                  rounding=act_rounding, overflow=act_overflow)
        assert_tally(counters["act"], act_tally)
    np.testing.assert_array_equal(got, ref)
    assert_tally(counters["acc"], tallies["acc"])
    assert_tally(counters["requant"], tallies["requant"])


def test_extreme_shifts_take_the_step_by_step_path():
    """A 40-bit-fraction accumulator into a 0-fraction output (shift 70 > 62) and an output with
    more fraction bits than the accumulator (a left shift) both equal the reference."""
    rng = np.random.default_rng(5)
    for f_in, f_w, f_out in [(QFormat(0, 40), QFormat(0, 30), QFormat(15, 0)),  # shift 70: all round to ~0
                             (QFormat(3, 2), QFormat(1, 2), QFormat(3, 12))]:
        x = rng.integers(max(f_in.min_code, -(2**28)), min(f_in.max_code, 2**28) + 1, (1, 3, 3, 2))
        w = rng.integers(max(f_w.min_code, -(2**28)), min(f_w.max_code, 2**28) + 1, (1, 1, 2, 3))
        x[0, 0, 0, 0] = 0
        kw = dict(in_fmt=f_in, w_fmt=f_w, b_fmt=f_w, out_fmt=f_out, acc_bits=64, rounding="half_even",
                  overflow="saturate", acc_overflow="wrap")
        np.testing.assert_array_equal(conv2d(x, w, None, **kw), conv2d_ref(x, w, None, **kw)[0])


@settings(max_examples=80)
@given(conv_cases())
def test_every_path_matches_reference(case):
    """Each path `conv_paths` offers for a case (in-tail sums, BLAS/im2col, int64, per-step)
    gives the reference's codes and counts; the default is the first."""
    x, w, bias, kw = case
    got = {}
    for path in ConvPath:
        try:
            got[path] = _run(x, w, bias, {**kw, "path": path})
        except PlanError as exc:
            assert "cannot compute these sums exactly" in str(exc)
    assert ConvPath.INT64_SUMS in got or ConvPath.PER_STEP in got


def test_float32_sums_only_where_proved_below_2_24():
    """8-bit words: the float32 GEMM is offered (first after the in-tail paths) and gives the
    reference's codes; a 16-bit format whose bound reaches 2**24 is not offered it, whatever
    the data (the proof comes from the formats: no pass over the data)."""
    from qsim.kernels.conv import conv_paths

    rng = np.random.default_rng(0)
    f8, f16 = QFormat.parse("Q2.5"), QFormat.parse("Q6.9")
    w = rng.integers(-128, 128, (1, 1, 200, 4))  # sum|w| ~ 200 * 64: 128 * that < 2**24
    x = rng.integers(-128, 128, (1, 3, 3, 200))
    common = dict(depthwise=False, strides=(1, 1), pads=(0, 0, 0, 0), per_step=False, in_tail=True, bias_max=0)
    assert conv_paths(x, w, in_fmt=f8, **common)[0] is ConvPath.FLOAT32_SUMS
    assert ConvPath.FLOAT32_SUMS not in conv_paths(x, w, in_fmt=f16, **common)  # small data, wide format
    big = x * 256
    kw = dict(in_fmt=f8, w_fmt=f8, b_fmt=f8, out_fmt=f8, acc_bits=32, rounding="half_even", overflow="saturate",
              acc_overflow="saturate")
    np.testing.assert_array_equal(conv2d(x, w, None, **kw, path=ConvPath.FLOAT32_SUMS),
                                  conv2d(x, w, None, **kw, path=ConvPath.INT64_SUMS))
    with pytest.raises(PlanError, match="float32_sums"):
        conv2d(big, w, None, **{**kw, "in_fmt": f16}, path=ConvPath.FLOAT32_SUMS)


def test_an_unavailable_path_is_refused():
    f = QFormat.parse("Q2.5")
    x = np.ones((1, 4, 4, 3), np.int64)
    w = np.ones((3, 3, 3, 2), np.int64)
    kw = dict(in_fmt=f, w_fmt=f, b_fmt=f, out_fmt=f, acc_bits=32, rounding="half_up", overflow="saturate",
              acc_overflow="saturate", pads="same")
    with pytest.raises(PlanError, match="pointwise_in_tail.*available: float32_sums, float64_sums, int64_sums"):
        conv2d(x, w, None, **kw, path=ConvPath.POINTWISE_IN_TAIL)
    with pytest.raises(PlanError, match="available: per_step"):
        conv2d(x, w, None, **kw, acc_saturation="per_step", path=ConvPath.INT64_SUMS)
