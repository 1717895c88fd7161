"""Every command and code block of docs/device.md runs (the C example: test_c_kernel.py)."""
from __future__ import annotations

import contextlib
import io
import shlex
from pathlib import Path

import numpy as np

from qsim.cli import main
from tests.testing.test_c_kernel import doc_block

REPO = Path(__file__).resolve().parents[2]


def run_commands(block: str) -> None:
    """Run each ``qsim ...`` line through the CLI's main() (relative paths: the cwd)."""
    for line in block.replace("\\\n", " ").splitlines():
        argv = shlex.split(line)
        if not argv:
            continue
        assert argv[0] == "qsim"
        argv = [str(REPO / a) if a.startswith("qsim/assets/") else a for a in argv[1:]]
        assert main(argv) == 0, line


def test_documented_vectors_and_export_commands(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(-1, 1, (1, 24, 24, 3)).astype(np.float32))
    run_commands(doc_block("vectors.sh"))
    assert (tmp_path / "vectors" / "manifest.json").is_file()
    assert (tmp_path / "vectors" / "bn_Conv1_vectors.h").is_file()
    run_commands(doc_block("export.sh"))
    assert (tmp_path / "a98_c" / "model.h").is_file()
    assert (tmp_path / "a98_hls" / "hls4ml_config.json").is_file()
    assert (tmp_path / "a98_hls" / "bn_Conv1_types.h").is_file()


def test_documented_hls4ml_snippet_prints_what_the_page_says():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(doc_block("hls4ml.py"), "docs/device.md", "exec"), {})
    assert out.getvalue().strip() == "Q0.7 Q5.10 32 half_up"
    assert "prints `Q0.7 Q5.10 32 half_up`" in (REPO / "docs" / "device.md").read_text()
