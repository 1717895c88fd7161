"""Run independent tasks in this process or in worker processes, with one progress bar.

`map_tasks` is the parallel machinery of `sweep` and `eval`: ``init(*init_args)`` builds a
worker's state once (load the graph, prepare the programs), ``work(state, task)`` computes
one task's result. With ``workers == 1`` everything runs here; otherwise in ``workers``
spawned processes (not forked: Numba/OpenMP threads do not survive fork), each calling
``init`` once. ``init``, ``work``, their arguments and results must be picklable then
(module-level functions). Results are yielded as they finish, each with the seconds its
``work`` took, so callers must not depend on the order: the numbers never depend on
``workers``.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

_STATE: dict[str, Any] = {}  # a worker process's state (built once by its initializer)


def _worker_init(init: Callable, init_args: tuple) -> None:
    _STATE["work_state"] = init(*init_args)


def _worker_call(payload):
    work, task = payload
    t0 = time.perf_counter()
    result = work(_STATE["work_state"], task)
    return task, result, time.perf_counter() - t0


def map_tasks(tasks: Sequence, *, init: Callable, init_args: tuple = (), work: Callable, workers: int = 1,
              progress: bool = True, desc: str = "", unit: str = "it") -> Iterator[tuple[Any, Any, float]]:
    """Yield ``(task, work(state, task), seconds)`` for every task, as they finish."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    if not tasks:
        return
    bar = progress_bar(len(tasks), progress, desc, unit)
    try:
        if workers == 1:
            state = init(*init_args)
            for task in tasks:
                t0 = time.perf_counter()
                result = work(state, task)
                yield task, result, time.perf_counter() - t0
                bar.update(1)
        else:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            with ctx.Pool(min(workers, len(tasks)), _worker_init, (init, init_args)) as pool:
                for out in pool.imap_unordered(_worker_call, [(work, t) for t in tasks]):
                    yield out
                    bar.update(1)
    finally:
        bar.close()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool, desc: str, unit: str = "it"):
    """A tqdm bar on stderr (hidden when stderr is not a terminal), or a no-op."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, disable=None)
