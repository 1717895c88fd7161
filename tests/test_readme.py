"""Every command of the README's "One example per verb" block runs and exits 0 (no traceback),
and its Python example runs."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    block = re.search(r"## One example per verb\s+```sh\n(.*?)```", README, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_every_verb_has_an_example():
    verbs = {c.split()[1] for c in _commands()}
    from qsim.cli import COMMANDS

    assert set(COMMANDS) <= verbs, f"verbs without a README example: {sorted(set(COMMANDS) - verbs)}"


@pytest.mark.parametrize("command", _commands(), ids=lambda c: c.split()[1])
def test_readme_command_runs(command, data_dir, tmp_path, request):
    args = shlex.split(command)
    assert args[0] == "qsim"
    if "model.tflite" in args:  # a small int8 model, converted here (TensorFlow is a test dependency)
        import numpy as np

        from tests.tflite.tflite_testmodels import MODELS

        (tmp_path / "model.tflite").write_bytes(MODELS["resnet8"](request.getfixturevalue("tf"), pow2=False))
        np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32))
    if "inputs.npz" in args:  # your own data: here four random preprocessed 64x64 inputs
        import numpy as np

        np.savez(tmp_path / "inputs.npz", x=np.random.default_rng(0).uniform(-1, 1, (4, 64, 64, 3)).astype(np.float32))
    data = str(Path(data_dir))
    args = [a.replace("../shared/data", data) for a in args[1:]]
    local = {"demo-out", "vectors-out", "export-out", "model.tflite", "x.npy", "inputs.npz"}
    args = [str(tmp_path / a) if a in local else a for a in args]
    env = dict(os.environ, QSIM_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "qsim", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_readme_python_example_runs(monkeypatch, capsys):
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {})
    assert "OverflowCounter" in capsys.readouterr().out
