"""Graph passes: each rewrite keeps the numbers (or, for symmetric_pads, says what changed)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import qsim
from qsim.errors import ModelError
from qsim.executors import float_exec
from qsim.graph.ir import Graph, Node
from qsim.graph.passes import PASSES, run_passes
from qsim.graph.passes.fold_bn import fold

from .keras2_files import write_legacy_h5


def conv_bn_graph(op: str, k: int, cin: int, mult_or_cout: int, seed: int, bias: bool, pads="same",
                  strides=(1, 1)) -> Graph:
    rng = np.random.default_rng(seed)
    f = np.float32
    cout = cin * mult_or_cout if op == "depthwise_conv2d" else mult_or_cout
    w = {"kernel": rng.normal(size=(k, k, cin, mult_or_cout)).astype(f)}
    if bias:
        w["bias"] = rng.normal(size=cout).astype(f)
    bn = {"gamma": rng.uniform(0.2, 3, cout).astype(f), "beta": rng.normal(size=cout).astype(f),
          "mean": rng.normal(size=cout).astype(f), "variance": rng.uniform(0.1, 4, cout).astype(f)}
    return Graph([
        Node("x", "input", [], {"shape": (None, None, cin)}),
        Node("conv", op, ["x"], {"strides": strides, "pads": pads, "dilation": (1, 1)}, w),
        Node("bn", "batch_norm", ["conv"], {"epsilon": 1e-3}, bn),
        Node("act", "relu", ["bn"], {"max_value": 6.0}),
    ], ["act"])


@given(op=st.sampled_from(["conv2d", "depthwise_conv2d"]), k=st.sampled_from([1, 3]),
       cin=st.integers(1, 5), mult=st.integers(1, 4), seed=st.integers(0, 2**16), bias=st.booleans(),
       stride=st.sampled_from([1, 2]))
def test_fold_bn_keeps_the_function(op, k, cin, mult, seed, bias, stride):
    graph = conv_bn_graph(op, k, cin, mult, seed, bias, strides=(stride, stride))
    x = np.random.default_rng(seed).normal(size=(2, 7, 6, cin))
    want = float_exec.run(graph, x, dtype=np.float64).values["bn"]
    graph = run_passes(graph, ["fold_bn"])
    assert [n.name for n in graph] == ["x", "bn", "act"] and graph["bn"].op == op
    assert graph["bn"].attrs["fused"] == ["conv", "bn"]
    got = float_exec.run(graph, x, dtype=np.float64).values["bn"]
    # the folded weights are float32: relative error ~ 2^-24 per product
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_fold_bn_formula_against_hand_values():
    conv = Node("c", "conv2d", ["x"], {}, {"kernel": np.array([[[[2.0, -1.0]]]], np.float32),
                                              "bias": np.array([1.0, 0.5], np.float32)})
    bn = Node("b", "batch_norm", ["c"], {"epsilon": 0.0},
              {"gamma": np.array([3.0, 1.0], np.float32), "beta": np.array([0.25, -1.0], np.float32),
               "mean": np.array([1.0, 2.5], np.float32), "variance": np.array([4.0, 0.25], np.float32)})
    out = fold(conv, bn)  # scale = gamma / sqrt(var) = [1.5, 2]
    assert out["kernel"].ravel().tolist() == [3.0, -2.0]
    assert out["bias"].tolist() == [0.25, -5.0]  # (b - mean)·s + beta


def test_bn_with_two_readers_of_its_conv_is_not_folded():
    graph = conv_bn_graph("conv2d", 1, 2, 2, 0, True)
    graph.replace_nodes(graph.nodes + [Node("other", "relu", ["conv"], {})], ["act", "other"])
    graph = run_passes(graph, ["fold_bn"])
    assert graph["bn"].op == "batch_norm"


def test_explicit_and_symmetric_pads(tmp_path):
    graph = conv_bn_graph("depthwise_conv2d", 3, 2, 1, 0, True, strides=(2, 2))
    graph["x"].attrs["shape"] = (8, 10, 2)
    x = np.random.default_rng(0).normal(size=(1, 8, 10, 2)).astype(np.float32)
    before = float_exec.run(graph, x).values["act"]
    graph = run_passes(graph, ["explicit_pads"])
    assert graph["conv"].attrs["pads"] == (0, 1, 0, 1)
    np.testing.assert_array_equal(float_exec.run(graph, x).values["act"], before)
    graph = run_passes(graph, ["symmetric_pads"])
    assert graph["conv"].attrs["pads"] == (1, 1, 1, 1)
    assert "symmetric_pads: conv pads (0, 1, 0, 1) -> (1, 1, 1, 1)" in graph.notes
    after = float_exec.run(graph, x).values["act"]
    assert after.shape == before.shape and not np.allclose(after, before)  # grid moved by one pixel


def test_symmetric_pads_on_unknown_size_and_load_model(tmp_path):
    path = tmp_path / "k2.h5"
    write_legacy_h5(path)
    graph = qsim.load_model(path, symmetric_pads=True)
    assert graph["bn"].attrs["pads"] == (1, 1, 1, 1)  # was "same" (size unknown)
    assert graph["dw"].attrs["pads"] == (1, 1, 1, 1)  # was ZeroPadding2D (0, 1, 0, 1) + valid
    assert graph["side_linear"].attrs["pads"] == (0, 0, 0, 0)  # 1x1: nothing to change
    assert graph["head"].attrs["pads"] == "same"  # 3x3 stride 1: TF's "same" is symmetric already
    assert sum(n.startswith("symmetric_pads:") for n in graph.notes) == 2  # bn, dw


def test_fuse_pad_adds_pads_and_keeps_numbers():
    rng = np.random.default_rng(0)
    graph = Graph([
        Node("x", "input", [], {"shape": (None, None, 2)}),
        Node("p", "pad", ["x"], {"pads": (1, 0, 2, 1)}),
        Node("c", "conv2d", ["p"], {"strides": (2, 1), "pads": (0, 1, 0, 0), "dilation": (1, 1)},
             {"kernel": rng.normal(size=(3, 3, 2, 3)).astype(np.float32)}),
    ], ["c"])
    x = rng.normal(size=(1, 9, 7, 2))
    want = float_exec.run(graph, x, dtype=np.float64).values["c"]
    graph = run_passes(graph, ["fuse_pad"])
    assert "p" not in graph and graph["c"].attrs["pads"] == (1, 1, 2, 1) and graph["c"].inputs == ["x"]
    np.testing.assert_array_equal(float_exec.run(graph, x, dtype=np.float64).values["c"], want)


def test_remove_identity_rewires_readers_and_outputs():
    graph = Graph([
        Node("x", "input", [], {"shape": (None, None, 1)}),
        Node("d", "identity", ["x"]),
        Node("r", "relu", ["d"], {}),
        Node("d2", "identity", ["r"]),
    ], ["d2"])
    graph = run_passes(graph, ["remove_identity"])
    assert [n.name for n in graph] == ["x", "r"] and graph["r"].inputs == ["x"] and graph.outputs == ["r"]


def test_validate_runs_after_each_pass():
    class Breaker:
        name = "breaker"

        def match(self, graph, node):
            return node.op == "conv2d" and "bias" not in node.weights

        def rewrite(self, graph, node):
            node.weights["bias"] = np.full(7, np.nan, np.float32)
            return True

    graph = conv_bn_graph("conv2d", 1, 2, 3, 0, False)
    PASSES["breaker"] = Breaker()
    try:
        with pytest.raises(ModelError, match="'conv'"):
            graph = run_passes(graph, ["breaker"])
    finally:
        del PASSES["breaker"]
    with pytest.raises(ModelError, match="unknown graph pass"):
        graph = run_passes(graph, ["nope"])
