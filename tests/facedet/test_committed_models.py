"""The trained detectors in models/ and qsim/assets/: each has its training record, loads in
qsim (no TensorFlow), and is the architecture its record names."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import qsim
from qsim.executors import run
from qsim.facedet.sweep import infer_stride

ROOT = Path(__file__).resolve().parents[2]
MODELS = sorted((ROOT / "models").glob("*.h5")) + sorted((ROOT / "qsim" / "assets").glob("*.h5"))
# Last backbone layer each head reads.
CUT = {"A": "block_13_expand_relu", "B": "out_relu"}


def test_there_are_models():
    names = {p.name for p in MODELS}
    assert {"a98_alpha1.0.h5", "a98_alpha0.5.h5", "a98_alpha0.35.h5"} <= names


def _make_divisible(v: float, divisor: int = 8) -> int:
    """Keras MobileNetV2's channel rounding (nearest multiple of 8, never below 90 %)."""
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * v else out


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_model_matches_its_record(path):
    record = json.loads(path.with_suffix(".json").read_text())
    arch = record["architecture"]
    assert record["model"] == path.name
    assert record["command"].startswith("python -m reference.train ")
    assert f"--alpha {arch['alpha']}" in record["command"] and f"--head {arch['head']}" in record["command"]
    assert record["epochs_run"] == len(record["history"]) >= 1
    graph = qsim.load_model(path)
    names = {node.name for node in graph}
    assert "head" in names and arch["frozen_through"] in names
    for head in arch["head"].replace("C", "AB"):
        assert CUT[head] in names
    head = next(node for node in graph if node.name == "head")
    assert head.weights["kernel"].shape[:2] == (arch["head_kernel"],) * 2
    assert head.weights["kernel"].shape[3] == 125
    assert infer_stride(graph) == arch["stride"]
    # alpha shows in block 13's expand width (576 * alpha, Keras' rounding to 8)
    expand = next(node for node in graph if node.name == "block_13_expand_BN")
    assert expand.weights["kernel"].shape[3] == 6 * _make_divisible(96 * arch["alpha"])
    out = run(graph, np.zeros((1, 64, 64, 3), np.float32)).output(0)
    assert np.isfinite(out).all() and out.shape[-1] == 125
