"""Every command and code example of docs/tflite.md runs (in a temp dir with model.tflite, x.npy)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np

from qsim.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "tflite.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_doc_commands_and_python_run(tflite_model_bytes, tmp_path, monkeypatch, capsys):
    import shutil

    from PIL import Image

    from qsim.datasets import REPO_ROOT

    (tmp_path / "model.tflite").write_bytes(tflite_model_bytes("resnet8"))
    (tmp_path / "a98.tflite").write_bytes(tflite_model_bytes("a98"))
    shutil.copy(REPO_ROOT / "qsim" / "assets" / "a98_alpha1.0.h5", tmp_path / "a98.h5")
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(1)
    for k in range(2):  # synthetic pictures
        Image.fromarray(rng.uniform(0, 255, (8, 8, 3)).astype(np.uint8)).resize((64, 64)).save(tmp_path / "images" / f"{k}.png")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32))
    monkeypatch.chdir(tmp_path)
    commands = [line[2:] for block in _blocks("console") for line in block.splitlines() if line.startswith("$ ")]
    assert len(commands) >= 4
    for cmd in commands:
        argv = shlex.split(cmd)
        assert argv[0] == "qsim"
        assert main(argv[1:]) == 0, cmd
    assert (tmp_path / "tensors.npz").is_file() and (tmp_path / "report.json").is_file()
    assert (tmp_path / "compare.json").is_file()
    for code in _blocks("python"):
        exec(compile(code, str(DOC), "exec"), {})
    out = capsys.readouterr().out
    assert "int8" in out and "CONV_2D" in out
