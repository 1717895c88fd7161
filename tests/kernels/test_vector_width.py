"""`qsim.kernels` asks LLVM for 512-bit vectors on AVX-512 hosts, unless the user chose.

Results cannot depend on it (every kernel test runs under the chosen width against the
Python-int references); these tests check the switch itself, in fresh interpreters.
"""
from __future__ import annotations

import os
import subprocess
import sys

from llvmlite import binding

PROBE = "import qsim.kernels, numba; print(numba.config.CPU_FEATURES)"


def _features_after_import(**env) -> str:
    full = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_FEATURES", "QSIM_NUMBA_512")}
    full.update(env)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    full["PYTHONPATH"] = root + os.pathsep + full.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_default_prefers_512_bit_on_avx512_hosts_only():
    features = _features_after_import()
    if binding.get_host_cpu_features().get("avx512f"):
        assert features == binding.get_host_cpu_features().flatten() + ",-prefer-256-bit"
    else:
        assert features == "None"


def test_user_choices_are_left_alone():
    assert _features_after_import(QSIM_NUMBA_512="0") == "None"
    assert _features_after_import(NUMBA_CPU_FEATURES="+sse2") == "+sse2"
