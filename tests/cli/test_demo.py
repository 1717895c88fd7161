"""``qsim demo``: PNG per format, detections, overflow summary, JSON; clear errors."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from qsim.cli import demo as demo_cli
from qsim.cli import main

from .tiny import tiny  # noqa: F401  (session fixture)


def test_demo_on_a_given_image(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["demo", "--model", str(tiny["fc"]), "--image", str(tiny["image"]), "--out", str(out),
                 "--score-threshold", "0.3", "--format", "Q4.11", "--no-k210"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "## fp32 (float)" in printed and "## q4.11 (full w=Q4.11" in printed
    assert "## overflow, q4.11 (3 pyramid runs)" in printed
    doc = json.loads((out / "demo.json").read_text())
    assert set(doc["runs"]) == {"fp32", "q4.11"}
    assert doc["stride"] == 2 and doc["runs"]["q4.11"]["overflow"]["n_images"] == 3
    for label in ("fp32", "q4.11"):
        png = np.asarray(Image.open(out / f"demo_{label}.png"))
        assert png.shape == (32, 32, 3)
        n = len(doc["runs"][label]["detections"])
        # green boxes drawn iff there are detections
        assert ((png == [0, 255, 0]).all(axis=-1).any()) == (n > 0)


def test_demo_default_image(tiny, tmp_path, capsys):
    code = main(["demo", "--model", str(tiny["fc"]), "--out", str(tmp_path), "--score-threshold", "0.9",
                 "--max-side", "256", "--no-k210"])
    assert code == 0
    assert "on skimage.data.astronaut() 512x512" in capsys.readouterr().out
    assert np.asarray(Image.open(tmp_path / "demo_fp32.png")).shape == (512, 512, 3)


def test_demo_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo_cli, "BUNDLED_MODEL", tmp_path / "absent.h5")
    assert main(["demo", "--out", str(tmp_path)]) == 1
    assert "absent.h5 not found" in capsys.readouterr().err
    (tmp_path / "m.h5").write_bytes(b"not hdf5")
    assert main(["demo", "--model", str(tmp_path / "m.h5"), "--image", str(tmp_path / "none.jpg")]) == 1
    assert "none.jpg" in capsys.readouterr().err


def test_bundled_demo_model_runs(tmp_path, capsys):
    """The README's command, on the committed model (when reference/train.py has produced it)."""
    if not demo_cli.BUNDLED_MODEL.is_file():
        assert main(["demo", "--out", str(tmp_path)]) == 1
        assert "reference/train.py" in capsys.readouterr().err
        return
    assert main(["demo", "--out", str(tmp_path), "--no-k210"]) == 0
    doc = json.loads((tmp_path / "demo.json").read_text())
    assert doc["stride"] == 16 and len(doc["runs"]["fp32"]["detections"]) >= 1


def test_demo_with_k210(tiny, tmp_path, capsys):
    code = main(["demo", "--model", str(tiny["fc"]), "--image", str(tiny["image"]), "--out", str(tmp_path),
                 "--score-threshold", "0.3"])
    assert code == 0
    printed = capsys.readouterr().out
    doc = json.loads((tmp_path / "demo.json").read_text())
    assert "## k210 (k210)" in printed and "overflow, k210" in printed
    assert "k210 calibrated on the picture itself" in printed
    assert (tmp_path / "demo_k210.png").is_file() and set(doc["runs"]) == {"fp32", "q9", "k210"}
