"""Every code, value, format and overflow counter of every node, against hashes stored at 3efbc78.

A refactor or a speed step must keep these: a mismatch names the run and its first node.
"""
from __future__ import annotations

import json

import pytest

from tests.runtime import bits


@pytest.fixture(scope="module")
def hashes(data_dir):
    return bits.node_hashes(data_dir)


def test_store_covers_every_run():
    stored = json.loads(bits.STORE.read_text())
    assert set(stored) == set(bits.configurations()) | {"kmodel_slim320"}


@pytest.mark.parametrize("run", sorted(json.loads(bits.STORE.read_text())))
def test_node_hashes_unchanged(hashes, run):
    stored = json.loads(bits.STORE.read_text())[run]
    got = hashes[run]
    assert list(got) == list(stored) or set(got) == set(stored), f"{run}: node set changed"
    changed = [n for n in stored if got.get(n) != stored[n]]
    assert not changed, f"{run}: {len(changed)} node(s) changed bits, first {changed[0]!r}"


def test_hash_sees_one_changed_code():
    """The hash is not blind: one code changed by one LSB changes the node's hash."""
    import numpy as np

    from qsim.trace import Trace

    t = Trace("fixed", codes={"a": np.arange(6, dtype=np.int64)}, values={"a": np.arange(6.0)})
    before = bits.trace_hashes(t)["a"]
    t.codes["a"][3] += 1
    assert bits.trace_hashes(t)["a"] != before
