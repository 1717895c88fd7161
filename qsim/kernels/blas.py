"""Matrix products for the kernels: row blocks on a small thread pool, BLAS single-threaded.

Why: NumPy's OpenBLAS workers busy-wait between calls. Beside Numba's OpenMP workers (and
on a shared machine) that doubled the CPU time of a whole A98 run and its wall time with
it (2 cores, load ~9: fixed executor 0.78 s with 2 BLAS threads, 0.36 s with 1). Here
each product is cut into row blocks that fixed-size Python threads hand to a
single-threaded BLAS (the GIL is released inside); idle pool threads sleep.

Contract: ``gemm(a, b)`` returns ``a @ b`` for 2-D float arrays. The row blocks depend
only on the shape (`ROWS_PER_BLOCK`), never on the thread count, so:

* integer-valued float64 inputs whose partial sums stay below 2**53 (what the integer
  kernels prove) give exactly ``a @ b`` (any summation order is exact);
* float results are the same for any thread count, and (one call per image) for any
  batch size; they may differ from one ``a @ b`` call in the last bits (BLAS picks its
  kernels by shape).

Side effect: the first call pins NumPy's OpenBLAS to one thread for the process (the pool
supplies the parallelism).

Threads: ``set_threads(n)`` (default: the CPU count, at most 2 per the dev machine;
``QSIM_GEMM_THREADS`` overrides); 1 runs every block in the caller.
"""
from __future__ import annotations

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from qsim.kernels import workspace

ROWS_PER_BLOCK = 2048  # rows per task: enough work to amortize a hand-off (~20 us)

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_threads = max(1, int(os.environ.get("QSIM_GEMM_THREADS", "0")) or min(os.cpu_count() or 1, 2))


def _find_openblas_setter():
    """NumPy's OpenBLAS ``set_num_threads`` (None if NumPy uses another BLAS)."""
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                fn.restype = None
                return fn
    return None


_set_blas_threads = _find_openblas_setter()
_blas_single = False


def set_threads(n: int) -> None:
    """Use `n` threads (>= 1) for `gemm`; results do not depend on it."""
    global _threads, _pool
    with _lock:
        if n != _threads and _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None
        _threads = max(1, int(n))


def get_threads() -> int:
    return _threads


def _single_threaded_blas() -> None:
    """Pin NumPy's OpenBLAS to one thread (once): the pool supplies the parallelism."""
    global _blas_single
    if not _blas_single and _set_blas_threads is not None:
        _set_blas_threads(1)
    _blas_single = True


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_threads, thread_name_prefix="qsim-gemm")
        return _pool


def _forget_pool_in_child() -> None:
    """A forked child has none of the parent's threads: start a fresh pool on demand."""
    global _pool, _lock
    _pool, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` for 2-D float arrays (M,K) @ (K,N) -> (M,N), in row blocks (see module doc)."""
    _single_threaded_blas()
    m = a.shape[0]
    if out is None:
        out = workspace.empty((m, b.shape[1]), np.result_type(a, b))
    nblocks = -(-m // ROWS_PER_BLOCK)
    bounds = [(i * ROWS_PER_BLOCK, min(m, (i + 1) * ROWS_PER_BLOCK)) for i in range(nblocks)]
    if _threads == 1 or nblocks <= 1:  # the same blocks in the caller: the same float bits
        for lo, hi in bounds:
            np.matmul(a[lo:hi], b, out=out[lo:hi])
        return out
    futures = [_get_pool().submit(np.matmul, a[lo:hi], b, out=out[lo:hi]) for lo, hi in bounds]
    for f in futures:
        f.result()
    return out
