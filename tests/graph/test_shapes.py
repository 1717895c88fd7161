"""Shape inference, params and MACs, and the inspect table/KPU column."""
from __future__ import annotations

import json

import numpy as np
import pytest

import qsim
from qsim.cli import main
from qsim.errors import ModelError
from qsim.graph.ir import Graph, Node
from qsim.graph.shapes import count_macs, count_params, infer_shapes
from qsim.graph.summary import kpu_fit, summarize

from .keras2_files import write_legacy_h5


@pytest.fixture()
def k2_graph(tmp_path):
    path = tmp_path / "k2.h5"
    write_legacy_h5(path)
    return qsim.load_model(path)


def test_shapes_match_execution(k2_graph):
    for hw in [(16, 16), (24, 32)]:
        shapes = infer_shapes(k2_graph, hw)
        trace = qsim.run(k2_graph, np.zeros((*hw, 3), np.float32))
        for name, value in trace.values.items():
            assert tuple(value.shape[1:]) == shapes[name], name


def test_unknown_size_propagates_none_and_channels(k2_graph):
    shapes = infer_shapes(k2_graph)
    assert shapes["cat"] == (None, None, 16) and shapes["prob"] == (None, None, 5)


def test_params_and_macs_by_hand(k2_graph):
    shapes = infer_shapes(k2_graph, (16, 16))
    bn = k2_graph["bn"]  # conv 3x3x3x4 folded with BN: kernel 108 + bias 4
    assert count_params(bn) == 112
    assert count_macs(bn, shapes["bn"]) == 8 * 8 * 4 * 27
    dw = k2_graph["dw"]  # depthwise 3x3, 4 channels x mult 2 -> 8 outputs on 4x4
    assert count_macs(dw, shapes["dw"]) == 4 * 4 * 8 * 9
    assert count_macs(k2_graph["add"], shapes["add"]) == 0
    assert count_macs(bn, (None, None, 4)) is None


def test_mismatched_add_is_a_model_error():
    g = Graph([Node("x", "input", [], {"shape": (4, 4, 2)}), Node("u", "upsample", ["x"], {"size": (2, 2)}),
               Node("a", "add", ["x", "u"])], ["a"])
    with pytest.raises(ModelError, match="node 'a': add of shapes"):
        infer_shapes(g)


def _conv(k=3, cin=8, cout=8, stride=1, pads="same", op="conv2d", mult=1):
    shape = (k, k, cin, cout if op == "conv2d" else mult)
    return Node("c", op, ["x"], {"strides": (stride, stride), "pads": pads, "dilation": (1, 1)},
                {"kernel": np.zeros(shape, np.float32)})


@pytest.mark.parametrize("node, in_shape, want", [
    (_conv(), (32, 32, 8), "yes"),
    (_conv(pads=(1, 1, 1, 1)), (32, 32, 8), "yes"),
    (_conv(stride=2, pads=(0, 1, 0, 1)), (32, 32, 8), "yes (CPU pad)"),
    (_conv(k=5), (32, 32, 8), "no: kernel 5x5 (1x1/3x3 only)"),
    (_conv(cin=2048), (32, 32, 2048), "no: channels 2048->8 > 1024"),
    (_conv(), (300, 32, 8), "no: input H 300 outside (4, 256)"),
    (_conv(op="depthwise_conv2d", mult=2), (32, 32, 8), "no: depth multiplier 2"),
    (Node("r", "relu", ["x"]), (32, 32, 8), ""),
])
def test_kpu_fit(node, in_shape, want):
    assert kpu_fit(node, in_shape) == want


def test_inspect_cli_table_and_json(tmp_path, capsys):
    path = tmp_path / "k2.h5"
    write_legacy_h5(path)
    out_json = tmp_path / "s.json"
    assert main(["inspect", str(path), "--size", "16x16", "--json", str(out_json), "--notes"]) == 0
    text = capsys.readouterr().out
    assert "bn" in text and "conv+bn" in text and "8x8x5" in text
    assert "BatchNorm: 1 folded into convs" in text and "fold_bn: folded bn into conv" in text
    summary = json.loads(out_json.read_text())
    graph = qsim.load_model(path, input_hw=(16, 16))
    backend_notes = summary.pop("backend_notes")
    assert summary == json.loads(json.dumps(summarize(graph, (16, 16))))
    assert backend_notes == {"fixed": ["fuse_activation: relu runs in the requantization of bn",
                                       "fuse_activation: side runs in the requantization of side_linear"]}
    assert "fixed backend passes" in text
    total = sum(count_macs(n, infer_shapes(graph, (16, 16))[n.name]) for n in graph)
    assert summary["totals"]["macs"] == total
    assert main(["inspect", str(path), "--no-fold-bn"]) == 0
    assert "0 folded into convs, 1 left as batch_norm" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "missing.h5")]) == 1
    assert "no such model file" in capsys.readouterr().err
    assert main(["inspect", str(path), "--size", "axb"]) == 1
