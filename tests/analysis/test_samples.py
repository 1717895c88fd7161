"""compare and profile split per sample: the same numbers in-process, on processes, on Dask.

The reference is the sequential loop the verbs ran before they were split (one trace after
the other into one accumulator): every split must give its numbers exactly, not nearly.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from qsim.analysis.compare import compare_runs
from qsim.analysis.overflow import OverflowReport
from qsim.analysis.profile import profile_model
from qsim.analysis.samples import compare_samples, profile_samples
from qsim.cli import main
from qsim.plan import Plan
from qsim.runtime import prepare
from tests.analysis.test_eval import classifier
from tests.cli.tiny import tiny  # noqa: F401  (session fixture)

PLAN = Plan.uniform("Q2.5", acc_bits=17, rounding="half_even", overflow="saturate")  # overflows on purpose


def _inputs(n=7, seed=5):
    x = np.random.default_rng(seed).uniform(-1.5, 1.5, (n, 8, 8, 3)).astype(np.float32)
    return [x[i:i + 1] for i in range(n)]


def _sequential_compare(graph, xs):
    test, ref, overflow = prepare(graph, PLAN), prepare(graph), OverflowReport(graph)

    def run(x):
        trace = test.run(x)
        overflow.update(trace)
        return trace

    return compare_runs(graph, xs, test=run, reference=ref.run).to_dict(20.0), overflow.to_dict()


def _targets():
    yield {"workers": 1}
    yield {"workers": 2}
    pytest.importorskip("distributed")
    yield {"scheduler": "local:2"}
    if os.environ.get("QSIM_DASK_SCHEDULER"):  # the scheduler and two workers .ci/run starts
        yield {"scheduler": os.environ["QSIM_DASK_SCHEDULER"]}
    elif os.environ.get("CI") == "true":
        pytest.fail("CI sets QSIM_DASK_SCHEDULER (.ci/run starts a Dask scheduler)")


def test_compare_is_split_invariant():
    graph, xs = classifier(), _inputs()
    want = _sequential_compare(graph, xs)
    assert want[1]["total_events"] > 0  # the overflow report has something to merge
    for where in _targets():
        comp, overflow = compare_samples(graph, xs, plan=PLAN, progress=False, **where)
        assert (comp.to_dict(20.0), overflow.to_dict()) == want, where


def test_profile_is_split_invariant():
    graph, xs = classifier(), _inputs(9, seed=8)
    want = profile_model(graph, xs).to_dict()
    for where in _targets():
        assert profile_samples(graph, xs, progress=False, **where).to_dict() == want, where


def test_cli_compare_and_profile_on_two_workers_write_the_same_json(tiny, tmp_path, capsys):
    for verb, extra in (("compare", ["--format", "Q2.5", "--acc-bits", "18"]), ("profile", [])):
        docs = []
        for workers in ("1", "2"):
            out = tmp_path / f"{verb}{workers}.json"
            argv = [verb, str(tiny["fc"]), "--images", str(tiny["images"]), "--n", "3", "--size", "24x24",
                    *extra, "--workers", workers, "--json", str(out)]
            assert main(argv) == 0, capsys.readouterr().err
            docs.append(json.loads(out.read_text()))
        assert docs[0] == docs[1], verb
        assert docs[0].get("n_images", docs[0].get("overflow", {}).get("n_images")) == 3
    capsys.readouterr()


def test_a_failing_sample_is_one_line_naming_it(tmp_path):
    graph = classifier()
    bad = [np.full((1, 8, 8, 3), np.nan, np.float32)]
    with pytest.raises(Exception, match="non-finite"):
        profile_samples(graph, _inputs(2) + bad, progress=False)
