"""Executors: run a `Graph` on an input and return a `Trace`.

>>> import numpy as np
>>> from qsim.graph.ir import Graph, Node
>>> g = Graph([Node("x", "input", attrs={"shape": (None, None, 1)}),
...            Node("r", "relu", ["x"], {"max_value": 6.0})], ["r"])
>>> run(g, np.array([[[-1.0], [7.0]]], np.float32)).outputs["r"].ravel().tolist()
[0.0, 6.0]
"""
from __future__ import annotations

from typing import Any

from qsim.executors.registry import EXECUTORS, get_executor
from qsim.trace import Trace


def run(graph: Any, x: Any, executor: str = "float", **options: Any) -> Trace:
    """Run ``graph`` on ``x`` with the named executor (see `EXECUTORS`); options go to it."""
    return get_executor(executor)(graph, x, **options)


__all__ = ["EXECUTORS", "get_executor", "run"]
