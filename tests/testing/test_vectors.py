"""`qsim vectors`: golden vectors of the A98 (Q6.9 plan) regenerate byte for byte, agree with
a fresh fixed run, and their accumulator -> output step is `qsim.fixed.rescale` with the
manifest's modes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qsim.cli import main
from qsim.executors import run
from qsim.fixed import QFormat, accumulate, rescale
from qsim.model import load_model
from qsim.plan import Plan
from qsim.vectors import read_vectors

A98 = Path(__file__).resolve().parents[2] / "qsim" / "assets" / "a98_alpha1.0.h5"
LAYERS = "^(bn_Conv1|expanded_conv_depthwise_BN|block_1_expand_BN|block_1_depthwise_BN|head)$"


@pytest.fixture(scope="module")
def x_npy(tmp_path_factory):
    path = tmp_path_factory.mktemp("vec") / "x.npy"
    np.save(path, np.random.default_rng(16).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32))
    return path


def vectors(out, x_npy, fmt_out, plan_args=("--format", "Q6.9")):
    argv = ["vectors", str(A98), *plan_args, "--input", str(x_npy), "--out", str(out),
            "--layers", LAYERS, "--format-out", fmt_out]
    assert main(argv) == 0
    return read_vectors(out)


@pytest.mark.parametrize("fmt_out", ["npz", "bin", "c"])
def test_vectors_regenerate_identically_and_match_a_fresh_run(tmp_path, x_npy, fmt_out):
    m1, d1 = vectors(tmp_path / "a", x_npy, fmt_out)
    m2, _ = vectors(tmp_path / "b", x_npy, fmt_out)
    assert m1["content_hash"] == m2["content_hash"]
    for f in m1["files"]:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert [layer["name"] for layer in m1["layers"]] == ["bn_Conv1", "expanded_conv_depthwise_BN",
                                                         "block_1_expand_BN", "block_1_depthwise_BN", "head"]
    graph = load_model(A98)
    trace = run(graph, np.load(x_npy), executor="fixed", plan=Plan.uniform("Q6.9"))
    for layer in m1["layers"]:
        np.testing.assert_array_equal(d1[layer["name"]]["output"], trace.codes[layer["name"]])
        np.testing.assert_array_equal(d1[layer["name"]]["input"], trace.codes[layer["input"]])
    assert m1["layout"] == {"activations": "NHWC", "weights": "HWIO"}


def test_accumulator_to_output_is_rescale_with_the_plans_modes(tmp_path, x_npy):
    plan = Plan.uniform("Q2.5", weights="Q0.7", acc_bits=16, rounding="half_even", overflow="saturate",
                        sites={"acc": {"overflow": "wrap"}})
    plan.save(tmp_path / "plan.json")
    manifest, data = vectors(tmp_path / "v", x_npy, "npz", ("--plan", str(tmp_path / "plan.json")))
    wrapped = 0
    for layer in manifest["layers"]:
        d, modes = data[layer["name"]], layer["modes"]
        fields = layer["fields"]
        acc = accumulate(d["acc"], layer["acc_bits"], overflow=modes["acc"]["overflow"])
        wrapped += int(np.count_nonzero(acc != d["acc"]))
        out = rescale(acc, layer["acc_frac"], QFormat.parse(fields["output"]["format"]),
                      rounding=modes["requant"]["rounding"], overflow=modes["requant"]["overflow"])
        np.testing.assert_array_equal(out, d["output"])
        assert layer["out_shift"] == layer["acc_frac"] - 5 == 7 and modes["requant"]["rounding"] == "half_even"
        assert layer["overflow"]["acc"]["events"] == int(np.count_nonzero(acc != d["acc"]))
    assert wrapped > 0  # a 16-bit accumulator overflows somewhere: the events are in the manifest


def test_bad_arguments_are_one_line_errors(tmp_path, x_npy, capsys):
    assert main(["vectors", str(A98), "--format", "Q6.9", "--input", str(x_npy), "--out", str(tmp_path),
                 "--layers", "^nothing$"]) == 1
    assert "no MAC layer" in capsys.readouterr().err
    assert main(["vectors", str(A98), "--format", "fp16", "--input", str(x_npy), "--out", str(tmp_path)]) == 1
    capsys.readouterr()
    assert main(["vectors", str(A98), "--input", str(x_npy), "--out", str(tmp_path)]) == 1
    assert "a Keras model needs a number format" in capsys.readouterr().err
