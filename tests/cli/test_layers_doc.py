"""Every command of docs/layers.md runs (ad01 / vww_96 architectures built in a temp dir)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from qsim.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "layers.md"
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_doc_commands_run(tf, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from reference import mcu_models

    mcu_models.build("ad01").save(tmp_path / "ad01.h5")
    mcu_models.build("vww_96").save(tmp_path / "vww_96.h5")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(3, 640)).astype(np.float32))
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (120, 90, 3), dtype=np.uint8)).save(
        tmp_path / "person.png")
    monkeypatch.chdir(tmp_path)
    commands = [line[2:] for block in _blocks("console") for line in block.splitlines() if line.startswith("$ ")]
    assert len(commands) == 5
    for cmd in commands:
        argv = shlex.split(cmd)
        assert argv[0] == "qsim"
        assert main(argv[1:]) == 0, cmd
    out = capsys.readouterr().out
    assert "input [3, 640]" in out and "preprocess unit" in out and "dense 640x128" in out
    assert (tmp_path / "compare.json").is_file() and (tmp_path / "profile.json").is_file()


def test_doc_accuracy_command_runs(tf, capsys):
    """``python -m reference.mcu_models`` (here on one model: the full table takes ~40 s)."""
    from reference import mcu_models

    [block] = _blocks("sh")
    assert block.strip() == "python -m reference.mcu_models"
    assert mcu_models.main(["--models", "str_ww"]) == 0
    row = capsys.readouterr().out.splitlines()[-1]
    assert row.startswith("| str_ww | 16 | 15 |"), row
