"""The documented hypothesis seed rule (docs/testing.md): fixed, printed, reproducible."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _header(env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co",
                           "tests/fuzz/test_fuzz_files.py::test_plan_random_bytes"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return next(line for line in proc.stdout.splitlines() if line.startswith("hypothesis seed:"))


def test_seed_from_env_and_from_the_date():
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "QSIM_HYPOTHESIS_SEED")}
    base["PYTHONPATH"] = str(ROOT)
    assert _header({**base, "QSIM_HYPOTHESIS_SEED": "13"}).startswith("hypothesis seed: 13 (from $QSIM_HYPOTHESIS_SEED)")
    dated = _header({**base, "CI": "true"})
    assert "from the date, CI" in dated and dated.split()[2].isdigit() and len(dated.split()[2]) == 8
