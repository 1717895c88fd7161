"""``--input X.npy`` (non-image models, any rank) and ``--preprocess`` for run / compare / profile."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from qsim.cli import main

from .tiny import tiny  # noqa: F401  (session fixture)

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def features(tf, tmp_path_factory):
    """A Dense classifier on 12 features (BN after a Dense: folded) and a batch of 5 samples."""
    import keras

    keras.utils.set_random_seed(4)
    inp = keras.Input((12,), name="features")
    x = keras.layers.Dense(16, name="fc1")(inp)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Activation("tanh", name="act1")(x)
    out = keras.layers.Dense(4, activation="softmax", name="probs")(x)
    model = keras.Model(inp, out, name="features")
    root = tmp_path_factory.mktemp("features")
    model.save(root / "fc.h5")
    x = np.random.default_rng(0).normal(size=(5, 12)).astype(np.float32)
    np.save(root / "x.npy", x)
    return {"model": root / "fc.h5", "x": root / "x.npy", "root": root, "keras": model(x).numpy()}


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_run_input_array_float_matches_keras(features, capsys, tmp_path):
    out_json = tmp_path / "run.json"
    code, out, err = _run(["run", str(features["model"]), "--input", str(features["x"]), "--format", "fp32",
                           "--json", str(out_json)], capsys)
    assert code == 0, err
    assert "x.npy (array) -> input [5, 12]" in out
    doc = json.loads(out_json.read_text())
    assert doc["input"] == str(features["x"]) and doc["image"] is None and doc["preprocess"] is None
    assert doc["input_shape"] == [5, 12] and doc["detections"] is None
    assert doc["outputs"][0]["name"] == "probs" and doc["outputs"][0]["shape"] == [5, 4]
    want = features["keras"]
    assert abs(doc["outputs"][0]["max"] - float(want.max())) <= 1e-5
    assert abs(doc["outputs"][0]["mean"] - float(want.mean())) <= 1e-6


@pytest.mark.parametrize("fmt", ["fp16", "Q4.11"])
def test_run_input_array_other_formats(features, capsys, fmt):
    code, out, err = _run(["run", str(features["model"]), "--input", str(features["x"]), "--format", fmt], capsys)
    if fmt == "fp16":
        assert code == 0, err
        assert "executor fp16" in out
    elif code == 1:  # until the integer kernels of dense/tanh/softmax land: a clear one-line error
        assert "has no fixed kernel" in err and err.count("\n") == 1, err
    else:
        assert code == 0 and "executor fixed" in out, err


def test_compare_and_profile_take_input_arrays(features, capsys, tmp_path):
    out_json = tmp_path / "cmp.json"
    code, out, err = _run(["compare", str(features["model"]), "--input", str(features["x"]), "--format", "fp16",
                           "--json", str(out_json)], capsys)
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert doc["input"] == str(features["x"]) and doc["images"] == [] and doc["n_images"] == 5
    assert {row["name"] for row in doc["layers"]} >= {"bn1", "act1", "probs"}
    prof_json = tmp_path / "prof.json"
    code, out, err = _run(["profile", str(features["model"]), "--input", str(features["x"]),
                           "--json", str(prof_json)], capsys)
    assert code == 0, err
    doc = json.loads(prof_json.read_text())
    assert doc["input"] == str(features["x"]) and doc["n_images"] == 5
    assert {row["name"] for row in doc["layers"]} >= {"bn1", "probs"}


def _bad(features, tmp_path, case):
    model, x = str(features["model"]), str(features["x"])
    extra: list[str] = []
    if case == "wrong_shape":
        np.save(tmp_path / "w.npy", np.zeros((3, 11), np.float32))
        x = str(tmp_path / "w.npy")
    elif case == "no_batch_axis":
        np.save(tmp_path / "w.npy", np.zeros(12, np.float32))
        x = str(tmp_path / "w.npy")
    elif case == "strings":
        np.save(tmp_path / "w.npy", np.array([["a"] * 12]))
        x = str(tmp_path / "w.npy")
    elif case == "pickled":
        np.save(tmp_path / "w.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
        x = str(tmp_path / "w.npy")
    elif case == "not_npy":
        (tmp_path / "w.csv").write_text("1,2,3")
        x = str(tmp_path / "w.csv")
    elif case == "truncated":
        (tmp_path / "w.npy").write_bytes(b"\x93NUMPY\x01\x00")
        x = str(tmp_path / "w.npy")
    elif case == "missing":
        x = str(tmp_path / "nope.npy")
    elif case == "nan":
        np.save(tmp_path / "w.npy", np.full((2, 12), np.nan, np.float32))
        x = str(tmp_path / "w.npy")
    elif case == "size_with_input":
        extra = ["--size", "8x8"]
    return ["run", model, "--input", x, "--format", "fp32", *extra]


@pytest.mark.parametrize("case, pattern", [
    ("wrong_shape", r"--input .*w\.npy: .*got shape \(3, 11\), expected \(N, 12\)"),
    ("no_batch_axis", r"shape \(12,\); model input 'features' takes \(N, 12\) \(batch first\)"),
    ("strings", r"dtype <U1; expected a numeric"),
    ("pickled", r"not a readable \.npy array"),
    ("not_npy", r"expected a \.npy file"),
    ("truncated", r"not a readable \.npy array"),
    ("missing", r"input file .*nope\.npy not found"),
    ("nan", r"24 non-finite value"),
    ("size_with_input", r"--size resizes images"),
])
def test_bad_input_array_is_one_line(features, capsys, tmp_path, case, pattern):
    import re

    code, out, err = _run(_bad(features, tmp_path, case), capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qsim run: error: "), err
    assert re.search(pattern, lines[0]), lines[0]


def test_image_on_a_feature_model_points_at_input(features, tiny, capsys):
    code, out, err = _run(["run", str(features["model"]), str(tiny["image"]), "--format", "fp32"], capsys)
    assert code == 1 and "not an image (H, W, C): pass the data with --input X.npy" in err


def test_image_and_input_are_exclusive(features, tiny, capsys):
    with pytest.raises(SystemExit):
        main(["run", str(features["model"]), str(tiny["image"]), "--input", str(features["x"]), "--format", "fp32"])
    assert "not allowed with" in capsys.readouterr().err


def test_preprocess_rules():
    from qsim.cli.inputs import parse_preprocess
    from qsim.images import mobilenet_preprocess

    px = np.array([0.0, 51.0, 127.5, 255.0], np.float32)
    assert parse_preprocess("mobilenet")(px).tolist() == mobilenet_preprocess(px).tolist()
    assert np.allclose(parse_preprocess("mobilenet")(px), [-1, -0.6, 0, 1])
    assert parse_preprocess("unit")(px).tolist() == (px / np.float32(255)).tolist()
    assert parse_preprocess("raw")(px).tolist() == px.tolist()
    ms = parse_preprocess("mean-std:100,50")
    assert ms.name == "mean-std:100,50" and ms(px).tolist() == ((px - 100) / np.float32(50)).tolist()
    for bad in ("caffe", "mean-std:1", "mean-std:1,0", "mean-std:a,b", "mean-std:nan,1"):
        with pytest.raises(argparse.ArgumentTypeError, match="--preprocess"):
            parse_preprocess(bad)


@pytest.mark.parametrize("rule", ["unit", "raw", "mean-std:120,60"])
def test_run_preprocess_feeds_the_rule(tiny, capsys, tmp_path, rule):
    """The float output of `qsim run --preprocess RULE` is the float run on RULE(pixels)."""
    import qsim
    from qsim.cli.inputs import parse_preprocess
    from qsim.images import load_image

    out_json = tmp_path / "p.json"
    code, out, err = _run(["run", str(tiny["fc"]), str(tiny["image"]), "--format", "fp32", "--preprocess", rule,
                           "--json", str(out_json)], capsys)
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert doc["preprocess"] == parse_preprocess(rule).name
    x = parse_preprocess(rule)(load_image(tiny["image"]))[None]
    want = qsim.run(qsim.load_model(tiny["fc"]), x).outputs["head"]
    assert doc["outputs"][0]["max"] == pytest.approx(float(want.max()), rel=1e-6)
    assert doc["outputs"][0]["mean"] == pytest.approx(float(want.mean()), rel=1e-5, abs=1e-6)


def test_bad_preprocess_is_an_argument_error(tiny, capsys):
    with pytest.raises(SystemExit):
        main(["run", str(tiny["fc"]), str(tiny["image"]), "--format", "fp32", "--preprocess", "caffe"])
    assert "--preprocess 'caffe'" in capsys.readouterr().err
