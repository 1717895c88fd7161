"""The weights-only backend (plan mode ``weights``, the paper's Table II protocol).

Weights and biases are quantized with the plan (`qsim.graph.passes.quantize_weights`) and
converted back to float32; the float backend runs that graph, so activations stay float
("converted back to a 32-bits floating point to simulate the network"). The trace holds
float ``values`` and the ``weights``/``bias`` counters of the MAC nodes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from qsim.errors import PlanError
from qsim.executors.float_exec import FloatProgram
from qsim.graph.ir import Graph
from qsim.graph.passes.quantize_weights import quantize_params, weights_only_graph
from qsim.plan import Mode, Plan, as_plan
from qsim.trace import Trace


def prepare(graph: Graph, plan: "Plan | str") -> FloatProgram:
    """The float program of `graph` with the plan's quantized-then-dequantized parameters."""
    plan = as_plan(plan)
    plan.validate(graph)
    if plan.mode is not Mode.WEIGHTS:
        raise PlanError(f"the weights-only backend runs 'weights' plans, got a {plan.mode.value!r} plan")
    params = quantize_params(graph, plan)
    return FloatProgram(weights_only_graph(graph, plan, params), np.float32, executor="weights",
                        static_counters={name: p.counters for name, p in params.items()})


def run(graph: Graph, x: Any, plan: "Plan | str", *, counters: bool = True, keep_values: bool = True) -> Trace:
    return prepare(graph, plan).run(x, keep_values=keep_values, counters=counters)
