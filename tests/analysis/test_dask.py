"""Sweeps and evals on Dask: same numbers as one process, a worker killed mid-run changes nothing.

`local:N` starts a LocalCluster here; ``$QSIM_DASK_SCHEDULER`` names the scheduler (and two
workers) that `.ci/run` starts on 127.0.0.1 for CI, as a user's cluster would be.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from qsim.analysis.evaluate import evaluate
from qsim.analysis.tasks import check_scheduler, map_tasks
from qsim.errors import InputError
from tests.analysis.test_eval import classifier


def _init(marker: str) -> dict:
    return {"marker": marker, "pid": os.getpid()}


def _work(state: dict, task: int):
    """task**3; the first attempt at task 3 kills its worker process (as a crash or an OOM kill would)."""
    if task == 3 and not Path(state["marker"]).exists():
        Path(state["marker"]).write_text("killed once")
        os._exit(1)
    return task ** 3, state["pid"]


def test_worker_killed_mid_run_its_task_is_redone(tmp_path):
    from distributed import LocalCluster

    marker = tmp_path / "killed"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster:
        out = {t: r for t, r, _ in map_tasks(list(range(8)), init=_init, init_args=(str(marker),), work=_work,
                                              scheduler=cluster.scheduler_address, progress=False)}
    assert marker.read_text() == "killed once"  # a worker did die mid-run
    assert {t: r[0] for t, r in out.items()} == {t: t ** 3 for t in range(8)}
    assert os.getpid() not in {r[1] for r in out.values()}  # the work ran in the workers, not here


def test_eval_on_a_local_cluster_gives_the_in_process_numbers():
    g = classifier()
    x = np.random.default_rng(3).uniform(-1, 1, (24, 8, 8, 3)).astype(np.float32)
    kw = dict(formats="fp32,q9,Q2.5", mode="full", batch=5, use_cache=False, progress=False, bootstrap=50)
    here = evaluate(g, x, None, **kw)
    there = evaluate(g, x, None, scheduler="local:2", **kw)
    assert [(r.format, r.value, r.interval, r.overflow and r.overflow.total_events) for r in here.rows] == \
        [(r.format, r.value, r.interval, r.overflow and r.overflow.total_events) for r in there.rows]


def test_sweep_on_the_ci_scheduler(data_dir, tmp_path):
    """The scheduler .ci/run starts (tcp://127.0.0.1:8786, two workers): a sweep as a user's cluster runs it."""
    address = os.environ.get("QSIM_DASK_SCHEDULER")
    if not address:
        pytest.skip("QSIM_DASK_SCHEDULER is not set (.ci/run starts a scheduler and two workers)")
    from qsim.facedet.fddb import load_fddb
    from qsim.facedet.sweep import sweep
    from tests.facedet.test_sweep import tiny_face_graph

    ds = load_fddb(data_dir / "fddb").limit(3)
    kw = dict(scales=(1.0,), progress=False, graph=tiny_face_graph(), mode="full")
    here = sweep(None, ds, "fp32,q9", use_cache=False, **kw)
    there = sweep(None, ds, "fp32,q9", scheduler=address, cache_dir=tmp_path, **kw)
    assert [(r.format, r.ap, r.overflow and r.overflow.total_events) for r in here.rows] == \
        [(r.format, r.ap, r.overflow and r.overflow.total_events) for r in there.rows]
    assert len(list(tmp_path.rglob("*.npz"))) == 6  # the client wrote every entry
    again = sweep(None, ds, "fp32,q9", scheduler=address, cache_dir=tmp_path, **kw)
    assert [r.cached_images for r in again.rows] == [3, 3]


def test_bad_scheduler_is_one_line():
    for bad in ("local:0", "local:x", "http://x", "tcp://nohost"):
        with pytest.raises(InputError, match="scheduler"):
            check_scheduler(bad)
    with pytest.raises(InputError, match="no Dask scheduler answers"):
        list(map_tasks([1], init=_init, init_args=("m",), work=_work, scheduler="tcp://127.0.0.1:9", progress=False))
