"""The fp16 executor: half parameters (and activations), round to nearest even, overflow counted."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.executors import float_exec, fp16_exec, run
from qsim.graph.ir import Graph, Node
from qsim.graph.passes.quantize_weights import mac_params
from qsim.plan import Plan


def graph(scale: float = 0.3) -> Graph:
    rng = np.random.default_rng(0)
    w = lambda *s: (rng.standard_normal(s) * scale).astype(np.float32)
    return Graph([
        Node("in", "input", attrs={"shape": (None, None, 3)}),
        Node("c1", "conv2d", ["in"], {"strides": (1, 1), "pads": "same"}, {"kernel": w(3, 3, 3, 4), "bias": w(4)}),
        Node("r1", "relu", ["c1"], {"max_value": 6.0}),
        Node("bn", "batch_norm", ["r1"], {"epsilon": 1e-3}, {
            "gamma": np.ones(4, np.float32), "beta": w(4), "mean": w(4), "variance": np.ones(4, np.float32)}),
        Node("dw", "depthwise_conv2d", ["bn"], {"strides": (2, 2), "pads": "same"}, {"kernel": w(3, 3, 4, 1)}),
        Node("sig", "sigmoid", ["dw"]),
    ], ["sig"])


def test_to_half_rounds_to_nearest_even():
    # 1 + 2**-11 is a tie between 1 and 1 + 2**-10: even mantissa is 1.0; 1 + 3*2**-11 -> 1 + 2**-9
    got = fp16_exec.to_half(np.array([1 + 2**-11, 1 + 3 * 2**-11, -(1 + 2**-11), 65504.0, 65519.9, 65520.0]))
    assert got.tolist() == [1.0, 1 + 2**-9, -1.0, 65504.0, 65504.0, float("inf")]


def test_half_activations_are_half_values_and_close_to_float():
    g = graph()
    x = np.random.default_rng(1).uniform(-1, 1, (2, 9, 8, 3)).astype(np.float32)
    t = run(g, x, "fp16")
    ref = float_exec.run(g, x, dtype=np.float64)
    assert t.executor == "fp16"
    for node in g:
        v = t.values[node.name]
        np.testing.assert_array_equal(v, v.astype(np.float16).astype(np.float32))  # every value is a half
        scale = max(1.0, float(np.max(np.abs(ref.values[node.name]))))
        assert np.max(np.abs(v - ref.values[node.name])) < 1e-2 * scale, node.name
    assert set(t.counters["c1"]) == {"weights", "bias", "act"} and set(t.counters["in"]) == {"input"}


def test_weights_only_fp16_is_float_on_half_weights():
    g = graph()
    x = np.random.default_rng(2).uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    t = fp16_exec.run(g, x, Plan.uniform("Q6.9", mode="fp16", fp16_activations=False))
    # the same graph with kernels rounded to half by hand (bn folded to a 1x1 depthwise)
    nodes = []
    for node in g:
        if node.op in ("conv2d", "depthwise_conv2d", "batch_norm"):
            kernel, bias, depthwise = mac_params(node)
            weights = {"kernel": kernel.astype(np.float16).astype(np.float32)}
            if bias is not None:
                weights["bias"] = bias.astype(np.float16).astype(np.float32)
            attrs = node.attrs if node.op != "batch_norm" else {"strides": (1, 1), "pads": (0, 0, 0, 0)}
            node = Node(node.name, "depthwise_conv2d" if depthwise else "conv2d", node.inputs, attrs, weights)
        nodes.append(node)
    want = float_exec.run(Graph(nodes, g.outputs), x)
    np.testing.assert_array_equal(t.outputs["sig"], want.outputs["sig"])


def test_an_fp16_plan_runs_on_the_fp16_backend():
    g = graph()
    x = np.random.default_rng(3).uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    t = run(g, x, plan=Plan.uniform("Q6.9", mode="fp16"))
    assert t.executor == "fp16"
    np.testing.assert_array_equal(t.outputs["sig"], fp16_exec.run(g, x).outputs["sig"])


def test_overflow_beyond_65504_is_counted():
    g = graph(scale=1e4)  # weights still fit a half (< 65504); sums do not
    x = np.full((1, 4, 4, 3), 10.0, np.float32)
    t = fp16_exec.run(g, x)
    assert t.counters["c1"]["act"].events > 0
    assert t.counters["c1"]["act"].headroom_bits < 0
    assert np.isinf(t.values["c1"]).any()


@pytest.mark.parametrize("keep", [True, False])
def test_keep_values(keep):
    g = graph()
    t = fp16_exec.run(g, np.zeros((1, 4, 4, 3), np.float32), keep_values=keep)
    assert set(t.outputs) == {"sig"} and (len(t.values) == len(g)) == keep
