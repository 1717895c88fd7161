"""The executor registry: name -> ``"module:function"`` (one literal; grep finds every executor).

Every executor is a function ``run(graph, x, **options) -> Trace`` (see `qsim.trace.Trace`).
Modules are imported on first use, so a broken or heavy executor does not slow ``import qsim``.
"""
from __future__ import annotations

import importlib
from typing import Callable

from qsim.errors import QsimError

EXECUTORS: dict[str, str] = {
    "float": "qsim.executors.float_exec:run",
    "fixed": "qsim.executors.fixed_exec:run",
    "fp16": "qsim.executors.fp16_exec:run",
    "k210": "qsim.k210.executor:run",
}


def get_executor(name: str) -> Callable:
    """The ``run`` function of executor ``name``; `QsimError` listing the known ones otherwise."""
    try:
        target = EXECUTORS[name]
    except KeyError:
        raise QsimError(f"unknown executor {name!r}; known: {', '.join(EXECUTORS)}") from None
    module_name, func = target.split(":")
    return getattr(importlib.import_module(module_name), func)
