"""`compare` and `profile` over many samples, one task per sample, on any `map_tasks` target.

Each sample (an image file or one row of an input array) is one task: a worker loads it
(``load(source) -> (1, ...) float32 array``, a picklable callable the caller supplies, so
the data is read where the work runs), runs the model and returns that sample's partial
statistics (`TraceComparer` + `OverflowReport`, or `activation_stats`). The client merges
the partials **in sample order**, which is exactly what a sequential loop computes, so the
numbers are the same in-process, on ``workers`` processes or on a Dask cluster (tested).

The model travels as its file path and the plan as its JSON dict; every worker loads and
prepares them once (`tasks.map_tasks`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from qsim.analysis.compare import Comparison, TraceComparer
from qsim.analysis.overflow import OverflowReport
from qsim.analysis.profile import Profile, activation_stats
from qsim.analysis.tasks import map_tasks


def _load_graph(model: Any):
    from qsim.graph.ir import Graph
    from qsim.model import load_model

    return model if isinstance(model, Graph) else load_model(model)


def _compare_init(model, executor, plan_dict, calibration, load):
    from qsim.plan import Plan
    from qsim.runtime import prepare

    graph = _load_graph(model)
    plan = None if plan_dict is None else Plan.from_dict(plan_dict)
    options = {} if calibration is None else {"calibration": calibration}
    test = prepare(graph, plan, executor=executor, **options)
    return graph, test, prepare(graph), load


def _compare_work(state, task):
    graph, test, reference, load = state
    _, source = task
    x = load(source)
    trace = test.run(x)
    comparer = TraceComparer(ops={n.name: n.op for n in graph})
    comparer.update(reference.run(x), trace)
    return comparer, OverflowReport(graph).update(trace)


def _profile_init(model, load):
    from qsim.runtime import prepare

    graph = _load_graph(model)
    return prepare(graph), load


def _profile_work(state, task):
    program, load = state
    return activation_stats(program.run(load(task[1])))


def _in_order(results, n: int):
    """Yield the results of tasks ``(i, source)`` in index order as they become available."""
    pending, nxt = {}, 0
    for (i, _), result, _seconds in results:
        pending[i] = result
        while nxt in pending:
            yield pending.pop(nxt)
            nxt += 1
    if nxt != n:  # map_tasks either yields every task or raises
        raise RuntimeError(f"{n - nxt} of {n} samples never came back")


def _identity(source):
    return source


def compare_samples(model: Any, sources: Sequence, *, load: Callable | None = None, executor: str | None = None,
                    plan: Any = None, calibration: Any = None, workers: int = 1, scheduler: str | None = None,
                    progress: bool = True) -> tuple[Comparison, OverflowReport]:
    """Per-layer error of the test run against float, and its overflow, over every sample.

    Args:
        model: a model file path (what workers load) or, in-process only, a `Graph`.
        sources: one entry per sample, each turned into a network input by ``load``
            (None: the entry is the ``(1, ...)`` array itself).
        executor, plan, calibration: the test run (`qsim.runtime.prepare`; ``executor="k210"``
            takes ``calibration``).
        workers, scheduler: where it runs (`qsim.analysis.tasks.map_tasks`).
    """
    from qsim.plan import as_plan

    graph = _load_graph(model)
    plan_dict = None if plan is None else as_plan(plan).to_dict()
    tasks = list(enumerate(sources))
    comparer, overflow = TraceComparer(ops={n.name: n.op for n in graph}), OverflowReport(graph)
    results = map_tasks(tasks, init=_compare_init, init_args=(model, executor, plan_dict, calibration, load or _identity),
                        work=_compare_work, workers=workers, scheduler=scheduler, progress=progress,
                        desc="compare", unit="sample")
    for part, part_overflow in _in_order(results, len(tasks)):
        comparer.merge(part)
        overflow.merge(part_overflow)
    return comparer.result(), overflow


def profile_samples(model: Any, sources: Sequence, *, load: Callable | None = None, workers: int = 1,
                    scheduler: str | None = None, progress: bool = True) -> Profile:
    """`Profile` of the float model over every sample (arguments as `compare_samples`)."""
    graph = _load_graph(model)
    prof = Profile(graph)
    tasks = list(enumerate(sources))
    results = map_tasks(tasks, init=_profile_init, init_args=(model, load or _identity), work=_profile_work,
                        workers=workers, scheduler=scheduler, progress=progress, desc="profile", unit="sample")
    for stats in _in_order(results, len(tasks)):
        prof.add(stats)
    return prof


__all__ = ["compare_samples", "profile_samples"]
