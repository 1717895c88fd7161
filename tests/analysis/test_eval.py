"""`qsim eval`: metrics per format on the user's data, shared store and workers, the CLI."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from qsim.analysis.evaluate import evaluate, load_data
from qsim.analysis.metrics import METRICS, auc, bootstrap_interval, default_metric
from qsim.errors import InputError
from qsim.executors import run
from qsim.graph.ir import Graph, Node


def classifier(seed: int = 0, classes: int = 10) -> Graph:
    """8x8x3 -> conv 3x3 + ReLU -> conv 6x6 valid (a dense layer): (N, 1, 1, classes) scores."""
    rng = np.random.default_rng(seed)
    return Graph([
        Node("image", "input", attrs={"shape": (8, 8, 3)}),
        Node("c1", "conv2d", ["image"], {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilation": (1, 1)},
             {"kernel": rng.normal(0, 0.4, (3, 3, 3, 8)).astype(np.float32),
              "bias": rng.normal(0, 0.1, 8).astype(np.float32)}),
        Node("r1", "relu", ["c1"]),
        Node("logits", "conv2d", ["r1"], {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilation": (1, 1)},
             {"kernel": rng.normal(0, 0.3, (6, 6, 8, classes)).astype(np.float32),
              "bias": np.zeros(classes, np.float32)}),
    ], ["logits"], name="tiny_classifier")


@pytest.fixture(scope="module")
def data():
    g = classifier()
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (40, 8, 8, 3)).astype(np.float32)
    labels = np.argmax(run(g, x, executor="float").output(0).reshape(40, -1), axis=1)
    y = labels.copy()
    y[:10] = (y[:10] + 1) % 10  # a quarter wrong: fp32 top-1 is exactly 0.75
    return g, x, y


def test_metrics_by_hand():
    out = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.4, 0.35, 0.25]])
    y = np.array([1, 0, 0, 1])
    assert METRICS["top1"](out, out, out, y) == 0.5
    assert METRICS["top1"](out, out, out, np.eye(3)[y]) == 0.5  # one-hot labels
    assert METRICS["top5"](out, out, out, y) == 1.0
    # AUC by Mann-Whitney: positives {0.9, 0.1}, negatives {0.3, 0.1}: (1 + 1 + 0 + 0.5) / 4
    scores = np.array([[0.9], [0.3], [0.1], [0.1]])
    assert auc(scores, scores, np.zeros((4, 5)), np.array([1, 0, 1, 0])) == pytest.approx(2.5 / 4)
    recon = np.zeros((4, 2))  # an autoencoder: the score is the reconstruction error
    assert auc(recon, recon, recon + np.array([[3], [1], [2], [0]]), np.array([1, 0, 1, 0])) == 1.0
    ref = np.ones((4, 2))
    assert METRICS["agreement"](ref, ref, np.zeros((4, 8)), None) == 1.0  # (N, 2) classifier: argmax agrees
    assert METRICS["agreement"](ref[:, :1] * 2, ref[:, :1], ref, None) == pytest.approx(0.0)  # SQNR 0 dB
    assert METRICS["mse"](out, out, out + 1.0, None) == pytest.approx(1.0)  # autoencoder: vs the input
    assert default_metric((4, 3), (4, 8), None) == "agreement"
    assert default_metric((4, 3), (4, 8), y) == "top1"
    assert default_metric((4, 3), (4, 8), np.eye(3)[y]) == "top1"
    assert default_metric((4, 3), (4, 8), out) == "mse"
    assert default_metric((4, 8), (4, 8), np.array([0, 1, 1, 0])) == "auc"
    lo, hi = bootstrap_interval(METRICS["top1"], out, out, out, y, 200, seed=0)
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0
    with pytest.raises(InputError, match="labels"):
        METRICS["top1"](out, out, out, np.array([0, 1, 7, 0]))


def test_eval_formats_workers_batches_and_cache(data, tmp_path):
    g, x, y = data
    a = evaluate(g, x, y, "fp32,q9,Q2.5", mode="full", batch=16, cache_dir=tmp_path, progress=False,
                 bootstrap=100)
    rows = {r.format: r for r in a.rows}
    assert a.metric == "top1" and a.agreement_kind == "top-1 agreement"
    assert rows["fp32"].value == 0.75 and rows["fp32"].agreement == 1.0 and rows["fp32"].overflow is None
    assert rows["q9"].agreement >= 0.95  # 16-bit words: nearly the float model
    assert rows["q2.5"].agreement < rows["q9"].agreement  # 8-bit words with 5 fraction bits lose classes
    assert rows["q9"].overflow is not None and rows["q9"].interval is not None
    # other batch size and 2 workers, nothing cached: the same numbers
    b = evaluate(g, x, y, "fp32,q9,Q2.5", mode="full", batch=7, workers=2, use_cache=False, progress=False,
                 bootstrap=100)
    assert [(r.value, r.agreement, r.interval, r.overflow.total_events if r.overflow else None) for r in a.rows] \
        == [(r.value, r.agreement, r.interval, r.overflow.total_events if r.overflow else None) for r in b.rows]
    c = evaluate(g, x, y, "fp32,q9,Q2.5", mode="full", batch=16, cache_dir=tmp_path, progress=False)
    assert [r.cached_batches for r in c.rows] == [3, 3, 3]
    assert [r.value for r in c.rows] == [r.value for r in a.rows]
    # without labels: agreement; the float run is made for it even when fp32 is not listed
    d = evaluate(g, x, None, "q9", mode="full", use_cache=False, progress=False)
    assert d.metric == "agreement" and [r.format for r in d.rows] == ["q9"]
    assert d.rows[0].value == rows["q9"].agreement


def test_load_data_refuses_bad_files(tmp_path, data):
    _, x, y = data
    np.savez(tmp_path / "d.npz", x=x, y=y)
    got_x, got_y = load_data(tmp_path / "d.npz")
    assert np.array_equal(got_x, x) and np.array_equal(got_y, y)
    np.savez(tmp_path / "k.npz", images=x, labels=y)
    assert load_data(tmp_path / "k.npz", "images", "labels")[1] is not None
    with pytest.raises(InputError, match="no input array"):
        load_data(tmp_path / "k.npz")
    with pytest.raises(InputError, match="no label array 'lab'"):
        load_data(tmp_path / "k.npz", "images", "lab")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="pickles"):
        load_data(tmp_path / "obj.npy")
    (tmp_path / "p.npz").write_bytes(pickle.dumps(x))
    with pytest.raises(InputError, match="p.npz"):
        load_data(tmp_path / "p.npz")
    bad = x.copy()
    bad[3, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(InputError, match="sample 3"):
        load_data(tmp_path / "nan.npy")
    np.savez(tmp_path / "short.npz", x=x, y=y[:5])
    with pytest.raises(InputError, match="do not match"):
        load_data(tmp_path / "short.npz")




def test_cli_eval_end_to_end(tmp_path, capsys):
    from qsim.cli import main

    keras = pytest.importorskip("keras")
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    out = keras.layers.Conv2D(10, 6)(h)
    model = keras.Model(inp, out)
    model.save(tmp_path / "m.h5")
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (20, 8, 8, 3)).astype(np.float32)
    y = np.argmax(model.predict(x, verbose=0).reshape(20, -1), axis=1)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    assert main(["eval", str(tmp_path / "m.h5"), "--data", str(tmp_path / "d.npz"), "--formats", "fp32,q9,Q1.6",
                 "--mode", "full", "--no-cache", "--json", str(tmp_path / "e.json"),
                 "--plot", str(tmp_path / "e.png")]) == 0
    printed = capsys.readouterr().out
    assert "metric top1" in printed and "| fp32 | float | 1.0000 |" in printed
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["qsim_eval"] == 1 and [r["format"] for r in doc["rows"]] == ["fp32", "q9", "q1.6"]
    assert (tmp_path / "e.png").stat().st_size > 0
    assert main(["eval", str(tmp_path / "m.h5"), "--data", str(tmp_path / "d.npz"), "--metric", "mse",
                 "--no-cache"]) == 1
    assert "mse" in capsys.readouterr().err
