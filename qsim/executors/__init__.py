"""The backends of `qsim.runtime` (float, fixed, weights-only, fp16; k210 lives in `qsim.k210`).

`run` and `prepare` are `qsim.runtime`'s: the plan's mode picks the backend.
"""
from __future__ import annotations

from qsim.runtime import BACKENDS, get_backend, prepare, run

__all__ = ["BACKENDS", "get_backend", "prepare", "run"]
