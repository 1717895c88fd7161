"""``qsim compare KERAS.h5 --against MODEL.tflite``: TFLite (dequantized) vs float, per layer."""
from __future__ import annotations

import json

import numpy as np

from qsim.analysis.tflite_compare import _layer_of
from qsim.cli import main
from qsim.datasets import REPO_ROOT

A98 = REPO_ROOT / "qsim" / "assets" / "a98_alpha1.0.h5"


def test_layer_names_from_converted_tensor_names():
    name = ("functional_1/A98_alpha1.0_1/block_1_project_BN_1/batchnorm/add_1;"
            "functional_1/A98_alpha1.0_1/block_1_project_1/convolution")
    assert "block_1_project_BN" in _layer_of(name)
    assert _layer_of("functional_1/m_1/Conv_1_1/Relu6")[:4] == ["Relu6", "Relu6", "Conv_1_1", "Conv_1"]


def test_compare_against_tflite(tflite_model_path, tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for k in range(2):  # smooth synthetic pictures (no face images in the repo or the tests)
        base = rng.uniform(0, 255, (8, 8, 3)).astype(np.uint8)
        Image.fromarray(base).resize((80, 70), Image.BILINEAR).save(imgs / f"p{k}.png")
    rc = main(["compare", str(A98), "--against", str(tflite_model_path("a98")), "--images", str(imgs),
               "--n", "2", "--size", "64x48", "--json", str(tmp_path / "c.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "TFLite reference kernels" in out and "block_13_expand_relu" in out
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["executor"] == "tflite" and doc["input_hw"] == [64, 48]
    layers = {layer["name"]: layer for layer in doc["layers"]}
    assert {"Conv1_relu", "block_1_project_BN", "block_13_expand_relu", "head"} <= set(layers)
    assert len(layers) >= 45
    # int8 is close to float early on, and every layer is a finite measurement
    assert layers["Conv1_relu"]["sqnr_db"] > 30
    assert all(layer["nonfinite"] == 0 for layer in doc["layers"])


def test_compare_against_size_rules(tflite_model_path, tmp_path, capsys):
    rc = main(["compare", str(A98), "--against", str(tflite_model_path("a98")), "--images", str(tmp_path)])
    assert rc == 1
    assert "dynamic H x W; give --size HxW" in capsys.readouterr().err
    rc = main(["compare", str(A98), "--against", str(tflite_model_path("mobilenet")), "--images", str(tmp_path),
               "--size", "32x32"])
    assert rc == 1
    assert "differs from the TFLite input 24x24" in capsys.readouterr().err
