"""Every code, value, format and overflow counter of every node, against `node_hashes.json`.

A refactor or a speed step must keep these: a mismatch names the run and its first node.
Integer runs are compared exactly on every machine; float-BLAS runs exactly on a stored
platform and by per-node statistics elsewhere (`tests/runtime/bits.py` says why).
"""
from __future__ import annotations

import pytest

from tests.runtime import bits

STORE = bits.load_store()


@pytest.fixture(scope="module")
def results(data_dir):
    stats: dict = {}
    hashes = bits.node_hashes(data_dir, stats)
    return bits.check(hashes, stats, STORE, bits.platform())


def test_store_covers_every_run():
    assert set(STORE["exact"]) | set(STORE["stats"]) == set(bits.configurations()) | {"kmodel_slim320"}
    assert set(STORE["stats"]) == set(bits.FLOAT_RUNS)
    for platform, runs in STORE["float"].items():
        assert set(runs) == set(bits.FLOAT_RUNS), platform


@pytest.mark.parametrize("run", sorted(set(STORE["exact"]) | set(STORE["stats"])))
def test_node_hashes_unchanged(results, run):
    assert not results[run], f"{run}: {results[run]}"


def test_hash_sees_one_changed_code():
    """The hash is not blind: one code changed by one LSB changes the node's hash."""
    import numpy as np

    from qsim.trace import Trace

    t = Trace("fixed", codes={"a": np.arange(6, dtype=np.int64)}, values={"a": np.arange(6.0)})
    before = bits.trace_hashes(t)["a"]
    t.codes["a"][3] += 1
    assert bits.trace_hashes(t)["a"] != before


def test_stats_check_sees_a_small_change():
    """The platform-free check is not blind: a 1 % change of one node's values fails it,
    a float32 reordering-sized one (1e-6 relative) does not."""
    import numpy as np

    v = np.random.default_rng(0).normal(size=10_000)
    want = [float(v.mean()), float(np.sqrt(np.mean(v * v))), float(np.abs(v).max())]
    for scale, differs in ((1.01, True), (1 + 1e-6, False)):
        w = v * scale
        assert bits.stats_differ([float(w.mean()), float(np.sqrt(np.mean(w * w))), float(np.abs(w).max())],
                                 want) is differs


def test_unknown_platform_is_checked_by_stats():
    """On a platform without stored hashes, a run whose stats moved is reported."""
    run = sorted(bits.FLOAT_RUNS)[0]
    node = next(iter(STORE["stats"][run]))
    stats = {r: {n: list(v) for n, v in nodes.items()} for r, nodes in STORE["stats"].items()}
    assert not any(bits.check({}, stats, {**STORE, "exact": {}}, "no such platform").values())
    stats[run][node][1] *= 1.01
    assert "moved beyond" in bits.check({}, stats, {**STORE, "exact": {}}, "no such platform")[run]
