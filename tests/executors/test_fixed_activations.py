"""The fixed executor runs tanh, hard_sigmoid (Keras 3 and 2), hard_swish, swish, softmax and
leaky/thresholded ReLU: codes and overflow counts equal a chain of the slow references on
narrow plans; with wide formats every node converges to the float executor."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from qsim.executors import fixed_exec, float_exec
from qsim.fixed.cast import quantize
from qsim.fixed.ref import quantize_ref
from qsim.graph.ir import Graph, Node, resolve_pads
from qsim.graph.passes.quantize_weights import mac_params
from qsim.kernels.ref import activations as ref
from qsim.kernels.ref.conv import conv2d_ref
from qsim.plan import Plan

ACTS = {  # node -> (op, attrs)
    "t": ("tanh", {}),
    "hsw": ("hard_swish", {}),
    "sw": ("swish", {}),
    "hs3": ("hard_sigmoid", {"slope": 1 / 6, "offset": 0.5}),
    "hs2": ("hard_sigmoid", {"slope": 0.2, "offset": 0.5}),
    "lk": ("relu", {"max_value": None, "negative_slope": 0.3, "threshold": 0.0}),
    "th": ("relu", {"max_value": 6.0, "negative_slope": 0.1, "threshold": 0.5}),
    "sm": ("softmax", {"axis": -1}),
}


def act_graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    nodes = [Node("in", "input", attrs={"shape": (None, None, 3)}),
             Node("c1", "conv2d", ["in"], {"strides": (1, 1), "pads": "same"},
                  {"kernel": (rng.standard_normal((3, 3, 3, 5)) * 0.8).astype(np.float32),
                   "bias": (rng.standard_normal(5) * 0.3).astype(np.float32)})]
    nodes += [Node(name, op, ["c1"], dict(attrs)) for name, (op, attrs) in ACTS.items()]
    return Graph(nodes, list(ACTS))


def _value_fn(node, np_):
    op, a = node.op, node.attrs
    if op == "tanh":
        return ref.tanh_value, None
    if op == "swish":
        return ref.swish_value, None
    if op == "hard_swish":
        return ref.hard_swish_value, None
    if op == "hard_sigmoid":
        slope = {1 / 6: Fraction(1, 6), 0.2: Fraction(1, 5)}[a["slope"]]
        return (lambda v: ref.hard_sigmoid_value(v, slope, Fraction(1, 2))), None
    [code], _ = quantize_ref([a["negative_slope"]], np_.weights, np_.rounding_at("weights"), np_.overflow_at("weights"))
    slope = Fraction(code, 2**np_.weights.frac_bits)
    top = None if a["max_value"] is None else Fraction(a["max_value"])
    cap = None if top is None else int(top * 2**np_.act.frac_bits)
    return (lambda v: ref.leaky_relu_value(v, slope, Fraction(a["threshold"]), top)), cap


def reference_chain(graph: Graph, x: np.ndarray, plan: Plan):
    codes, fmts, events = {}, {}, {}
    for node in graph:
        np_ = plan.for_node(node.name)
        modes = dict(rounding=np_.rounding_at("act"), overflow=np_.overflow_at("act"))
        if node.op == "input":
            out, t = quantize(x, np_.act, rounding=np_.rounding_at("input"), overflow=np_.overflow_at("input")), None
        elif node.op == "conv2d":
            kernel, bias, _ = mac_params(node)
            wq = quantize(kernel, np_.weights, rounding=np_.rounding_at("weights"), overflow=np_.overflow_at("weights"))
            bq = quantize(bias, np_.bias, rounding=np_.rounding_at("bias"), overflow=np_.overflow_at("bias"))
            pads = resolve_pads("same", codes["in"].shape[1:3], (3, 3), (1, 1))
            out, tt = conv2d_ref(codes["in"], wq, bq, in_fmt=fmts["in"], w_fmt=np_.weights, b_fmt=np_.bias,
                                 out_fmt=np_.act, acc_bits=np_.acc_bits, strides=(1, 1), pads=pads, depthwise=False,
                                 rounding=np_.rounding_at("requant"), overflow=np_.overflow_at("requant"),
                                 acc_overflow=np_.overflow_at("acc"), acc_saturation=np_.acc_saturation)
            t = tt["requant"]
        elif node.op == "softmax":
            out, t = ref.softmax_ref(codes["c1"], axis=-1, in_fmt=fmts["c1"], out_fmt=np_.act, **modes)
        else:
            fn, cap = _value_fn(node, np_)
            out, t = ref.unary_ref(codes["c1"], fn, in_fmt=fmts["c1"], out_fmt=np_.act, cap=cap, **modes)
        codes[node.name], fmts[node.name], events[node.name] = out, np_.act, None if t is None else t.events
    return codes, events


NARROW_PLANS = {
    "q9-half_up": Plan.uniform("Q6.9", acc_bits=32),
    "q4-floor-wrap": Plan.uniform("Q3.4", acc_bits=32, rounding="floor", overflow="wrap", weights="Q1.6"),
    "mixed": Plan.per_layer({"in": "Q1.6", "c1": {"act": "Q2.5", "weights": "Q1.6", "bias": "Q3.4"},
                             "t": "Q0.7", "hs3": "UQ0.8", "hs2": {"act": "UQ0.4", "rounding": "half_up"},
                             "sm": "UQ0.8", "hsw": {"act": "Q1.3", "rounding": "toward_zero"},
                             "lk": {"act": "Q1.6", "weights": "Q0.3"}, "th": {"act": "UQ2.5", "weights": "Q0.2"},
                             "sw": {"act": "Q0.5", "rounding": "half_away"}},
                            default="Q4.7", acc_bits=24, rounding="half_even"),
    "wide-input-uniq-path": Plan.per_layer({"c1": {"act": "Q5.14"}}, default="Q4.9", acc_bits=40,
                                           rounding="half_even", overflow="saturate"),
}


@pytest.mark.parametrize("name", NARROW_PLANS)
def test_narrow_formats_equal_the_reference_chain(name):
    plan = NARROW_PLANS[name]
    g = act_graph()
    x = np.random.default_rng(1).uniform(-2, 2, (2, 5, 4, 3))
    trace = fixed_exec.run(g, x, plan)
    want, events = reference_chain(g, x, plan)
    for node in g:
        np.testing.assert_array_equal(trace.codes[node.name], want[node.name], err_msg=f"{name}: {node.name}")
        if node.name in ACTS:
            assert trace.counters[node.name]["act"].events == events[node.name], (name, node.name)
    if name == "mixed":
        assert sum(trace.counters[n]["act"].events for n in ACTS) > 0, "the mixed plan is meant to overflow"
        assert trace.counters["th"]["weights"].elements == 1  # the slope, quantized at site weights


def test_wide_formats_converge_to_float():
    g = act_graph(3)
    x = np.random.default_rng(2).uniform(-2, 2, (2, 6, 7, 3))
    plan = Plan.uniform("Q10.21", weights="Q7.24", acc_bits=64, rounding="half_even")
    fixed = fixed_exec.run(g, x, plan)
    want = float_exec.run(g, x, dtype=np.float64)
    for node in g:
        err = np.max(np.abs(fixed.values[node.name] - want.values[node.name]))
        scale = max(1.0, float(np.max(np.abs(want.values[node.name]))))
        # c1 carries ~2**-21 from the weights and input; every activation adds one rounding
        assert err <= 2e-5 * scale, (node.name, err)
    np.testing.assert_allclose(fixed.values["sm"].sum(axis=-1), 1.0, atol=5 * 2**-21)
