"""The runtime: backends prepare programs, one walker runs them (`protocol`, `walker`).

`BACKENDS` names every backend (one literal; modules load on first use). What runs is one
choice: the plan's mode picks the backend (`backend_for`), or a plan-less backend is
named (``"float"``, ``"k210"``, ``"tflite"``: its graph is a `qsim.tflite.TfliteModel`).

>>> import numpy as np
>>> from qsim.graph.ir import Graph, Node
>>> from qsim.plan import Plan
>>> g = Graph([Node("x", "input", attrs={"shape": (None, None, 1)}), Node("r", "relu", ["x"])], ["r"])
>>> x = np.array([[[-1.0], [0.3]]], np.float32)
>>> run(g, x).outputs["r"].ravel().tolist()
[0.0, 0.30000001192092896]
>>> program = prepare(g, Plan.uniform("Q2.5"))       # once per (graph, plan)
>>> program.executor, program.run(x).codes["r"].ravel().tolist()   # 0.3 * 32 = 9.6 -> 10
('fixed', [0, 10])
"""
from __future__ import annotations

import importlib
from typing import Any

from qsim.errors import PlanError, QsimError
from qsim.plan import as_plan
from qsim.runtime.protocol import Codes, NodeRun, Program
from qsim.runtime.walker import execute
from qsim.trace import Trace

# name -> module with prepare(graph, plan=None, **options) -> Program
BACKENDS: dict[str, str] = {
    "float": "qsim.executors.float_exec",
    "fixed": "qsim.executors.fixed_exec",
    "weights": "qsim.executors.weights_only",
    "fp16": "qsim.executors.fp16_exec",
    "k210": "qsim.k210.executor",
    "tflite": "qsim.tflite.executor",  # prepare(model: TfliteModel, **options); inputs in the stored dtype
}
# plan mode -> backend
_BY_MODE = {"full": "fixed", "weights": "weights", "fp16": "fp16"}


def backend_for(plan: Any) -> str:
    """The backend a plan runs on: None -> float; mode full / weights / fp16 -> fixed / weights / fp16."""
    if plan is None:
        return "float"
    return _BY_MODE[as_plan(plan).mode.value]


def get_backend(name: str):
    """The backend module ``name``; `QsimError` listing the known ones otherwise."""
    try:
        module = BACKENDS[name]
    except KeyError:
        raise QsimError(f"unknown executor {name!r}; known: {', '.join(BACKENDS)}") from None
    return importlib.import_module(module)


def prepare(graph: Any, plan: Any = None, *, executor: str | None = None, **options: Any) -> Program:
    """A `Program` for `graph`: the plan's backend, or the named plan-less one (see `BACKENDS`).

    Args:
        plan: a `qsim.plan.Plan` (or format string): its mode picks fixed / weights / fp16.
        executor: a backend name; with a plan it must be the plan's (one choice, said once).
        options: the backend's own (float: ``dtype``; k210: ``calibration``, ``switches``,
            ``add_mode``; tflite: ``options``, ``input_shapes``, ``threads``, what-if keywords).
    """
    chosen = backend_for(plan)
    if executor is not None and executor != chosen:
        if plan is None:
            chosen = executor
        else:
            raise PlanError(f"executor {executor!r} with a {chosen!r} plan: the plan's mode picks the backend "
                            "(leave executor out, or change the plan's mode)")
    backend = get_backend(chosen)
    if plan is None:
        return backend.prepare(graph, **options)
    return backend.prepare(graph, plan, **options)


def run(graph: Any, x: Any, executor: str | None = None, *, plan: Any = None, counters: bool = True,
        keep_values: bool = True, **options: Any) -> Trace:
    """Prepare and execute once (to run one graph on many inputs, `prepare` once instead)."""
    program = prepare(graph, plan, executor=executor, **options)
    return execute(program, x, keep_values=keep_values, counters=counters)


__all__ = ["BACKENDS", "Codes", "NodeRun", "Program", "backend_for", "execute", "get_backend", "prepare", "run"]
