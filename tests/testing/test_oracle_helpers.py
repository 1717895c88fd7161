"""`qsim.testing`: the strategies draw what they promise, `assert_same_codes` passes the slow
Python-int references of every op and fails a planted bug with a minimal, readable report."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsim.errors import QsimError
from qsim.executors import run
from qsim.fixed import QFormat
from qsim.kernels.ref.common import rescale_int
from qsim.kernels.ref.conv import conv2d_ref
from qsim.kernels.ref.eltwise import add_ref, relu_ref
from qsim.testing import (
    CodesMismatch,
    assert_same_codes,
    cases,
    codes,
    edge_codes,
    formats,
    plans,
    tensors,
)
from tests.executors.test_fixed_exec import every_op_graph


def ref_conv(depthwise: bool):
    def candidate(x, w, bias, in_fmt, w_fmt, b_fmt, out_fmt, acc_bits, rounding, overflow, acc_overflow,
                  strides, pads):
        return conv2d_ref(x, w, bias, in_fmt=in_fmt, w_fmt=w_fmt, b_fmt=b_fmt, out_fmt=out_fmt,
                          acc_bits=acc_bits, strides=strides, pads=pads, depthwise=depthwise,
                          rounding=rounding, overflow=overflow, acc_overflow=acc_overflow)[0]
    return candidate


def ref_add(a, b, a_fmt, b_fmt, out_fmt, rounding, overflow):
    return add_ref([a, b], [a_fmt, b_fmt], out_fmt=out_fmt, rounding=rounding, overflow=overflow)[0]


def ref_relu(x, in_fmt, out_fmt, max_value, rounding, overflow):
    return relu_ref(x, in_fmt=in_fmt, out_fmt=out_fmt, max_value=max_value, rounding=rounding,
                    overflow=overflow)[0]


def ref_rescale(x, src_frac, out_fmt, rounding, overflow):
    return np.vectorize(lambda v: rescale_int(int(v), src_frac, out_fmt, rounding, overflow),
                        otypes=[np.int64])(x)


def ref_requantize(x, in_fmt, out_fmt, rounding, overflow):
    return ref_rescale(x, in_fmt.frac_bits, out_fmt, rounding, overflow)


@pytest.mark.parametrize("op, candidate, n", [
    ("conv1x1", ref_conv(False), 25), ("conv2d", ref_conv(False), 25), ("depthwise", ref_conv(True), 25),
    ("rescale", ref_rescale, 60), ("requantize", ref_requantize, 60), ("add", ref_add, 60),
    ("relu", ref_relu, 60),
])
def test_the_python_int_references_pass(op, candidate, n):
    assert_same_codes(candidate, op, max_examples=n, seed=1)


def test_a_planted_rounding_bug_is_reported_minimally():
    def floor_instead(x, src_frac, out_fmt, rounding, overflow):
        return ref_rescale(x, src_frac, out_fmt, "floor", overflow)

    with pytest.raises(CodesMismatch) as info:
        assert_same_codes(floor_instead, "rescale", rounding="half_up", overflow="saturate",
                          max_examples=200, seed=0)
    err = info.value
    # shrunk: one element, one dropped bit, the value exactly half an LSB
    assert err.case["x"].shape == (1,) and err.index == (0,)
    assert int(err.expected[0]) == int(err.got[0]) + 1
    text = str(err)
    assert "rescale kernel at index (0,)" in text and "rounding half_up" in text
    assert "expected code" in text and "got" in text


def test_wrong_shape_and_dtype_are_reported():
    with pytest.raises(CodesMismatch, match="output shape"):
        assert_same_codes(lambda **kw: np.zeros(7), "relu", shape=(2, 3), max_examples=5)
    with pytest.raises(CodesMismatch, match="dtype float64"):
        assert_same_codes(lambda x, **kw: x.astype(float), "relu", max_examples=5)


def test_unknown_op_or_field_names_the_choices():
    with pytest.raises(QsimError, match="known ops: conv1x1"):
        cases("conv3d")
    with pytest.raises(QsimError, match=r"no field\(s\) \['stride'\]"):
        cases("conv2d", stride=(2, 2))


def test_a_flat_buffer_is_accepted():
    assert_same_codes(lambda **kw: ref_relu(**kw).ravel(), "relu", max_examples=10)


@given(formats(), st.integers(1, 6))
def test_edge_codes_are_codes_with_ties(fmt, s):
    edges = edge_codes(fmt, s)
    assert all(fmt.min_code <= c <= fmt.max_code for c in edges)
    assert {fmt.min_code, fmt.max_code, 0} <= set(edges)
    if fmt.max_code >= 1 << s:
        assert any(c % (1 << s) == 1 << (s - 1) for c in edges)  # an exact tie for s dropped bits


@given(st.data(), formats())
def test_codes_and_tensors_stay_in_the_format(data, fmt):
    for arr in (data.draw(codes(fmt, (3, 2))), data.draw(tensors(fmt, max_dims=3))):
        assert arr.dtype == np.int64 and 1 <= arr.ndim <= 3
        assert arr.min() >= fmt.min_code and arr.max() <= fmt.max_code


@given(cases("conv2d", in_fmt="Q3.12", acc_bits=40))
def test_pinned_fields_are_kept(case):
    assert case["in_fmt"] == QFormat.parse("Q3.12") and case["acc_bits"] == 40
    assert case["x"].min() >= -2**15 and case["x"].max() < 2**15


@settings(max_examples=15)
@given(plans(every_op_graph()))
def test_drawn_plans_validate_and_run(plan):
    graph = every_op_graph()
    trace = run(graph, np.zeros((1, 8, 8, 3), np.float32), executor="fixed", plan=plan)
    assert trace.codes["sig"].shape[-1] == 5
