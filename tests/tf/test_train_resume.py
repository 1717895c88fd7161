"""reference.train: an interrupted training run resumes after its last checkpointed epoch."""
from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def train(tf):
    from reference import train as train_mod

    return train_mod


def _argv(tmp_path, name):
    # A tiny but complete run: alpha 0.35 A98 on 16 small crops, 2 epochs.
    return ["--head", "A", "--frozen", "98", "--alpha", "0.35", "--crops", "16",
            "--crop-size", "160", "--epochs", "2", "--batch", "8", "--lr", "1e-3",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / name / "m.h5")]


class Interrupted(Exception):
    pass


def test_interrupted_run_resumes_and_matches_the_uninterrupted_one(train, data_dir, tmp_path,
                                                                    monkeypatch):
    import keras

    assert train.main(_argv(tmp_path, "whole")) == 0
    whole = json.loads((tmp_path / "whole" / "m.json").read_text())

    save = train.Checkpoint.save

    def save_then_die(self, *args, **kwargs):
        save(self, *args, **kwargs)
        raise Interrupted  # the machine went away after epoch 1's checkpoint

    monkeypatch.setattr(train.Checkpoint, "save", save_then_die)
    with pytest.raises(Interrupted):
        train.main(_argv(tmp_path, "split"))
    state = json.loads((tmp_path / "split" / "m.ckpt.json").read_text())
    assert state["epoch"] == 1 and (tmp_path / "split" / "m.ckpt1.npz").exists()
    monkeypatch.setattr(train.Checkpoint, "save", save)

    # Other training arguments: refused, the checkpoint is kept.
    with pytest.raises(SystemExit, match="other arguments.*lr"):
        train.main([a if a != "1e-3" else "2e-3" for a in _argv(tmp_path, "split")])
    assert (tmp_path / "split" / "m.ckpt.json").exists()

    assert train.main(_argv(tmp_path, "split")) == 0
    split = json.loads((tmp_path / "split" / "m.json").read_text())
    assert not list((tmp_path / "split").glob("*.ckpt*"))  # cleaned up after the final save
    assert split["epochs_run"] == 2
    for a, b in zip(whole["history"], split["history"]):
        for key in ("train_loss", "val_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-5), (a, b)
    # Same weights as the uninterrupted run: Adam moments, step count and the sampling RNG
    # all came back (a fresh optimizer or RNG would give different epoch-2 updates).
    w_whole = keras.models.load_model(tmp_path / "whole" / "m.h5", compile=False).get_weights()
    w_split = keras.models.load_model(tmp_path / "split" / "m.h5", compile=False).get_weights()
    for a, b in zip(w_whole, w_split):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
