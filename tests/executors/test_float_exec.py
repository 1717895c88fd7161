"""Float executor: input handling, Trace contents, dtype, batch independence, registry."""
from __future__ import annotations

import numpy as np
import pytest

import qsim
from qsim.executors import float_exec
from qsim.graph.ir import Graph, Node
from qsim.runtime import BACKENDS, get_backend


def small_graph() -> Graph:
    rng = np.random.default_rng(0)
    f = np.float32
    return Graph([
        Node("x", "input", [], {"shape": (None, None, 3)}),
        Node("c", "conv2d", ["x"], {"strides": (2, 2), "pads": "same", "dilation": (1, 1)},
             {"kernel": rng.normal(size=(3, 3, 3, 4)).astype(f), "bias": rng.normal(size=4).astype(f)}),
        Node("r", "relu", ["c"], {"max_value": 6.0}),
        Node("d", "depthwise_conv2d", ["r"], {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilation": (1, 1)},
             {"kernel": rng.normal(size=(3, 3, 4, 1)).astype(f)}),
        Node("a", "add", ["d", "r"]),
        Node("u", "upsample", ["a"], {"size": (2, 2), "interpolation": "bilinear"}),
        Node("cat", "concat", ["u", "x"], {"axis": -1}),
        Node("s", "sigmoid", ["cat"]),
    ], ["s", "a"])


def test_trace_has_every_node_in_graph_order_and_outputs():
    graph = small_graph()
    x = np.random.default_rng(1).uniform(-1, 1, (1, 8, 6, 3)).astype(np.float32)
    trace = float_exec.run(graph, x)
    assert trace.executor == "float"
    assert list(trace.values) == [n.name for n in graph]
    assert list(trace.outputs) == ["s", "a"]
    assert trace.values["cat"].shape == (1, 8, 6, 7)
    assert all(v.dtype == np.float32 for v in trace.values.values())
    np.testing.assert_array_equal(trace.output(1), trace.values["a"])


def test_hwc_image_is_a_batch_of_one_and_batches_are_independent():
    graph = small_graph()
    xs = np.random.default_rng(2).uniform(-1, 1, (3, 10, 12, 3)).astype(np.float32)
    batch = float_exec.run(graph, xs).outputs["s"]
    for i in range(3):
        single = float_exec.run(graph, xs[i]).outputs["s"]
        assert single.shape == (1, 10, 12, 7)
        np.testing.assert_array_equal(single[0], batch[i])  # bit-equal: one GEMM per image


def test_float64_option_and_precision():
    graph = small_graph()
    x = np.random.default_rng(3).uniform(-1, 1, (1, 8, 8, 3))
    t64 = float_exec.run(graph, x, dtype=np.float64)
    t32 = float_exec.run(graph, x)
    assert t64.values["a"].dtype == np.float64
    np.testing.assert_allclose(t32.values["a"], t64.values["a"], rtol=1e-5, atol=1e-5)


def test_keep_values_false_keeps_only_outputs():
    graph = small_graph()
    x = np.zeros((8, 8, 3), np.float32)
    trace = float_exec.run(graph, x, keep_values=False)
    assert set(trace.values) == set(trace.outputs) == {"s", "a"}  # only the outputs
    np.testing.assert_array_equal(trace.outputs["s"], float_exec.run(graph, x).outputs["s"])


def test_two_inputs_by_name():
    graph = Graph([Node("p", "input", [], {"shape": (2, 2, 1)}), Node("q", "input", [], {"shape": (2, 2, 1)}),
                   Node("a", "add", ["p", "q"])], ["a"])
    out = float_exec.run(graph, {"p": np.ones((2, 2, 1)), "q": np.full((2, 2, 1), 2.0)}).outputs["a"]
    assert out.ravel().tolist() == [3.0] * 4
    with pytest.raises(qsim.errors.InputError, match="pass a dict"):
        float_exec.run(graph, np.ones((2, 2, 1)))


def test_registry():
    assert BACKENDS["float"] == "qsim.executors.float_exec"
    assert get_backend("float") is float_exec
    graph = small_graph()
    x = np.zeros((4, 4, 3), np.float32)
    np.testing.assert_array_equal(qsim.run(graph, x).outputs["s"],
                                  qsim.run(graph, x, executor="float").outputs["s"])
