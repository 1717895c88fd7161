"""`qsim.kernels.workspace`: buffers are recycled only when nothing refers to them."""
from __future__ import annotations

import numpy as np

from qsim.kernels import workspace


def _addr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_held_arrays_and_views_are_never_handed_out_again():
    shape = (workspace.MIN_BYTES // 8 + 17,)
    a = workspace.empty(shape, np.float64)
    a[:] = 1.0
    b = workspace.empty(shape, np.float64)  # `a` is held: a different buffer
    assert not np.shares_memory(a, b)
    view = a[5:].reshape(-1)
    del a
    c = workspace.empty(shape, np.float64)  # the view still holds a's buffer
    assert not np.shares_memory(view, c) and not np.shares_memory(b, c)
    c[:] = 2.0
    assert (view == 1.0).all()


def test_dropped_buffers_are_reused_with_the_requested_shape_and_dtype():
    n = workspace.MIN_BYTES // 8 + 8000
    a = workspace.empty((n,), np.float64)
    addr = _addr(a)
    del a
    b = workspace.empty((n // 2 + 4, 2), np.float64)  # a nearby size shares the rounded buffer
    assert _addr(b) == addr and b.shape == (n // 2 + 4, 2) and b.dtype == np.float64 and b.flags.c_contiguous
    i = workspace.empty((n,), np.int64)  # another dtype: another buffer
    assert not np.shares_memory(b, i)


def test_small_and_empty_requests():
    assert workspace.empty((3, 4), np.int64).shape == (3, 4)
    assert workspace.empty(0, np.float64).size == 0


def test_pool_size_is_bounded(monkeypatch):
    monkeypatch.setattr(workspace, "MAX_BYTES", 4 * workspace.MIN_BYTES)
    workspace.clear()
    held = [workspace.empty((workspace.MIN_BYTES // 8 * k,), np.float64) for k in (1, 2, 3, 5, 9)]
    assert workspace._total <= 4 * workspace.MIN_BYTES + held[-1].nbytes * 2
    workspace.clear()
    assert workspace._total == 0
