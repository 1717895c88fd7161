"""`qsim.kernels.blas.gemm`: exact on integer-valued float64, independent of threads and blocks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsim.kernels import blas


@pytest.fixture
def threads():
    saved = blas.get_threads()
    yield blas.set_threads
    blas.set_threads(saved)


def _exact(a, b):
    """Python-int product (the reference: no float anywhere)."""
    ai, bi = a.astype(np.int64).astype(object), b.astype(np.int64).astype(object)
    return ai.dot(bi)


@settings(max_examples=40)
@given(m=st.integers(1, 700), k=st.integers(1, 40), n=st.integers(1, 30), rows=st.sampled_from([1, 7, 64, 4096]),
       nthreads=st.sampled_from([1, 2, 3]), seed=st.integers(0, 2**32 - 1))
def test_gemm_exact_integers(m, k, n, rows, nthreads, seed):
    """Integer codes up to 2**15 x 2**15 over K <= 40 terms: exact in float64, any blocks/threads."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-(2**15), 2**15, (m, k)).astype(np.float64)
    b = rng.integers(-(2**15), 2**15, (k, n)).astype(np.float64)
    a[0, :] = -(2**15)  # extreme codes in every case
    b[:, 0] = -(2**15)
    saved = blas.get_threads(), blas.ROWS_PER_BLOCK
    try:
        blas.set_threads(nthreads)
        blas.ROWS_PER_BLOCK = rows
        got = blas.gemm(a, b)
    finally:
        blas.set_threads(saved[0])
        blas.ROWS_PER_BLOCK = saved[1]
    assert got.dtype == np.float64
    assert (got.astype(np.int64).astype(object) == _exact(a, b)).all()


def test_gemm_float32_independent_of_threads(threads, monkeypatch):
    """Float results: the same bits for 1 and 2 threads (blocks depend on the shape only)."""
    monkeypatch.setattr(blas, "ROWS_PER_BLOCK", 100)
    rng = np.random.default_rng(3)
    a = rng.standard_normal((1000, 77)).astype(np.float32)
    b = rng.standard_normal((77, 33)).astype(np.float32)
    results = []
    for n in (1, 2):
        threads(n)
        results.append(blas.gemm(a, b))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], a @ b, rtol=1e-5, atol=1e-4)


def test_gemm_writes_into_out(threads, monkeypatch):
    monkeypatch.setattr(blas, "ROWS_PER_BLOCK", 8)
    threads(2)
    a = np.arange(60.0).reshape(20, 3)
    b = np.arange(6.0).reshape(3, 2)
    out = np.full((20, 2), np.nan)
    assert blas.gemm(a, b, out=out) is out
    np.testing.assert_array_equal(out, a @ b)


def test_conv_blas_path_independent_of_gemm_threads_blocks_and_batch(threads, monkeypatch):
    """A 1x1 conv wide enough for the BLAS path: same codes for 1 or 2 pool threads, any
    block size, batch of 3 or one image at a time; equal to the Python-int reference."""
    from qsim.fixed import QFormat
    from qsim.kernels import conv as conv_mod
    from qsim.kernels.ref.conv import conv2d_ref

    f_in, f_w, f_out = QFormat(6, 9), QFormat(2, 13), QFormat(4, 11)
    rng = np.random.default_rng(7)
    cin = conv_mod.DIRECT_MAX_K + 8
    x = rng.integers(f_in.min_code, f_in.max_code + 1, (3, 5, 6, cin))
    w = rng.integers(f_w.min_code, f_w.max_code + 1, (1, 1, cin, 5))
    kw = dict(in_fmt=f_in, w_fmt=f_w, b_fmt=f_in, out_fmt=f_out, acc_bits=36, rounding="half_even",
              overflow="saturate", acc_overflow="saturate")
    ref, _ = conv2d_ref(x, w, None, **kw)
    for n, rows in [(1, 4096), (2, 7), (2, 1)]:
        threads(n)
        monkeypatch.setattr(blas, "ROWS_PER_BLOCK", rows)
        np.testing.assert_array_equal(conv_mod.conv2d(x, w, None, **kw), ref)
        singles = [conv_mod.conv2d(x[i:i + 1], w, None, **kw) for i in range(3)]
        np.testing.assert_array_equal(np.concatenate(singles), ref)


def test_gemm_works_in_a_forked_child(threads, monkeypatch):
    """The pool's threads do not survive fork(): the child must start its own, not hang."""
    import multiprocessing as mp

    monkeypatch.setattr(blas, "ROWS_PER_BLOCK", 4)
    threads(2)
    a = np.arange(40.0).reshape(20, 2)
    b = np.ones((2, 3))
    blas.gemm(a, b)  # the parent's pool exists now
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_child_gemm, (a, b)).get(timeout=60)
    np.testing.assert_array_equal(got, a @ b)


def _child_gemm(a, b):
    from qsim.kernels import blas as child_blas

    child_blas.ROWS_PER_BLOCK = 4
    return child_blas.gemm(a, b)
