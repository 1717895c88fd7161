"""The executor protocol: a backend prepares a `Program`; one walker runs every program.

A backend is a module-level object with a ``name`` and ``prepare(graph, plan=None,
**options) -> Program``. ``prepare`` does everything that does not depend on the input:
graph passes (a new graph: the caller's is never modified), quantized parameters, derived
weight forms, calibration. The `Program` owns those caches, so running it again on another
input costs only the kernels, and nothing is cached globally or by ``id()``.

A `Program` tells the walker (`qsim.runtime.walker.execute`):

* ``graph``: the graph it runs (after the backend's passes), ``executor``: the name the
  `Trace` carries, ``input_dtype``: the float dtype inputs are checked into;
* ``ops``: its op table, ``{op: kernel}`` (one dict literal per backend, keyed by
  `qsim.graph.ops.Op`); a kernel is ``kernel(program, node, inputs, ctx) -> tensor``;
* ``static_counters``: ``{node: {site: OverflowCounter}}`` of the work ``prepare`` did
  (quantizing weights and biases): each run's trace starts from copies of them;
* ``counts_every_node``: every node gets a ``Trace.counters`` entry when counting (an
  integer backend), else only nodes whose kernels counted something;
* ``feed(node, x, ctx) -> tensor``: an input node's tensor from the checked float array;
* ``record(trace, node, tensor, keep)``: what the `Trace` holds for a node (``keep``:
  every node, else only model outputs reach it);
* ``run(x, counters=True, keep_values=True) -> Trace``: the walker on this program.

A program whose inputs are not float arrays may have ``check_input(node, x) -> array``:
the walker then calls it instead of its float check (TFLite: integer codes of each input
tensor's stored dtype, checked by dtype, range and shape, a one-line `InputError`).

A program whose lowering depends on the input size may also have ``for_input(feeds) ->
Program``: the walker calls it first and runs what it returns (the K210 backend builds
and keeps one lowered program per input size).

A tensor is whatever the backend's kernels exchange (a float array, `Codes`, ...). ``ctx``
is the node's `NodeRun`: its overflow counters (``ctx.counter(site)``, None when counting
is off), whether its tensor reaches the trace (``ctx.keep``) and the run's scratch state
shared between kernels of one run (``ctx.state``, e.g. a fused activation's codes).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

from qsim.fixed.counters import OverflowCounter
from qsim.fixed.format import QFormat
from qsim.graph.ir import Graph, Node
from qsim.trace import Trace


class Codes(NamedTuple):
    """Integer codes and the format they are in (what integer kernels exchange).

    ``codes`` may be int64 or integer-valued float64 (BLAS-ready, exact below 2**53);
    ``None`` when a fused consumer made them unnecessary (never read).
    """

    codes: Any
    fmt: QFormat


@dataclass(slots=True)
class NodeRun:
    """What a kernel may touch while one node runs."""

    node: Node
    counting: bool
    state: dict[str, Any]
    counters: dict[str, OverflowCounter] = field(default_factory=dict)
    keep: bool = True  # the node's tensor reaches the trace (so a kernel must materialise it)

    def counter(self, site: str) -> OverflowCounter | None:
        """The node's counter for `site` (created on first use), or None when not counting."""
        if not self.counting:
            return None
        c = self.counters.get(site)
        if c is None:
            c = self.counters[site] = OverflowCounter(f"{self.node.name}/{site}")
        return c


Kernel = Callable[[Any, Node, list, NodeRun], Any]


class Program(Protocol):
    executor: str
    graph: Graph
    ops: Mapping[str, Kernel]
    input_dtype: Any
    static_counters: Mapping[str, Mapping[str, OverflowCounter]]
    counts_every_node: bool

    def feed(self, node: Node, x: np.ndarray, ctx: NodeRun) -> Any: ...

    def record(self, trace: Trace, node: Node, tensor: Any, keep: bool) -> None: ...

    def run(self, x: Any, *, counters: bool = True, keep_values: bool = True) -> Trace:
        """``qsim.runtime.walker.execute(self, x, ...)``."""
        ...


class Backend(Protocol):
    name: str

    def prepare(self, graph: Graph, plan: Any = None, **options: Any) -> Program: ...
