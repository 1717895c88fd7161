"""Run independent tasks here, in worker processes, or on a Dask cluster, with one progress bar.

`map_tasks` is the parallel machinery of `sweep` and `eval`: ``init(*init_args)`` builds a
worker's state once (load the graph, prepare the programs), ``work(state, task)`` computes
one task's result. Where the work runs:

* ``workers == 1`` and no scheduler: in this process.
* ``workers > 1``: that many spawned processes (not forked: Numba/OpenMP threads do not
  survive fork), each calling ``init`` once.
* ``scheduler="tcp://HOST:PORT"``: an existing Dask cluster (``dask scheduler`` and
  ``dask worker``; `qsim` must be importable on the workers, and the data at the same
  path). ``scheduler="local:N"``: a `distributed.LocalCluster` of N single-threaded worker
  processes started here and closed at the end. Each Dask worker builds the state once per
  job (keyed by a token of the job) and keeps it while the job runs; a worker that dies
  loses only its running tasks, which the scheduler runs again elsewhere.

``init``, ``work``, their arguments and results must be picklable (module-level functions)
except in-process. Results are yielded **in this process** as they finish, each with the
seconds its ``work`` took: the caller (the client) writes the result store, so a killed run
keeps everything it received and nothing half-written. The numbers never depend on where or
in which order tasks ran.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from qsim.errors import InputError

_STATE: dict[str, Any] = {}  # a worker process's state (built once by its initializer, or per Dask job)


def _worker_init(init: Callable, init_args: tuple) -> None:
    _STATE["work_state"] = init(*init_args)


def _worker_call(payload):
    work, task = payload
    t0 = time.perf_counter()
    result = work(_STATE["work_state"], task)
    return task, result, time.perf_counter() - t0


def _job_arguments(init_args: tuple) -> tuple:
    return init_args


def _dask_call(token: str, init: Callable, init_args: tuple, work: Callable, task: Any):
    """One task on a Dask worker: the job's state is built on its first task there."""
    state = _STATE.get(token)
    if state is None:
        for old in [k for k in _STATE if k.startswith("job-")]:  # one job's state at a time per worker
            del _STATE[old]
        state = _STATE[token] = init(*init_args)
    t0 = time.perf_counter()
    result = work(state, task)
    return task, result, time.perf_counter() - t0


def check_scheduler(scheduler: str | None) -> None:
    """``None``, ``local:N`` (N >= 1) or ``tcp://HOST:PORT`` (else `InputError`)."""
    if scheduler is None:
        return
    if scheduler.startswith("local:"):
        n = scheduler[len("local:"):]
        if not n.isdigit() or int(n) < 1:
            raise InputError(f"--scheduler {scheduler!r}: local:N needs N >= 1 workers")
        return
    if not scheduler.startswith(("tcp://", "tls://", "inproc://")) or ":" not in scheduler.split("://", 1)[1]:
        raise InputError(f"--scheduler {scheduler!r}: use tcp://HOST:PORT (a running Dask scheduler) or local:N")


def map_tasks(tasks: Sequence, *, init: Callable, init_args: tuple = (), work: Callable, workers: int = 1,
              scheduler: str | None = None, progress: bool = True, desc: str = "",
              unit: str = "it") -> Iterator[tuple[Any, Any, float]]:
    """Yield ``(task, work(state, task), seconds)`` for every task, as they finish."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    check_scheduler(scheduler)
    if not tasks:
        return
    if scheduler is not None:
        yield from _map_dask(tasks, init, init_args, work, scheduler, progress, desc, unit)
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


def _map_dask(tasks, init, init_args, work, scheduler, progress, desc, unit):
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InputError("--scheduler needs Dask: pip install 'dask[distributed]' (or qsim[dask])") from None
    cluster = None
    try:
        if scheduler.startswith("local:"):
            cluster = LocalCluster(n_workers=int(scheduler[len("local:"):]), threads_per_worker=1, processes=True,
                                   dashboard_address=None, host="127.0.0.1")
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout=10)
            except (OSError, TimeoutError) as exc:
                raise InputError(f"--scheduler {scheduler}: no Dask scheduler answers ({exc})") from None
    except BaseException:
        if cluster is not None:
            cluster.close()
        raise
    token = f"job-{uuid.uuid4().hex}"
    bar = progress_bar(len(tasks), progress, f"{desc} ({len(client.scheduler_info()['workers'])} Dask workers)", unit)
    try:
        # The job's arguments as a task, not scattered data: if every worker holding them
        # dies, the scheduler recomputes them from the task (scattered data would be lost,
        # and every task depending on it cancelled as "already forgotten").
        args_future = client.submit(_job_arguments, init_args, pure=False, key=f"{token}-args")
        futures = [client.submit(_dask_call, token, init, args_future, work, task, pure=False, retries=2)
                   for task in tasks]
        for future in as_completed(futures):
            yield future.result()
            bar.update(1)
            future.release()
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()


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
