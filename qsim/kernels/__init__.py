"""Kernels shared by the executors.

Integer kernels (Numba, exact): `conv` (conv2d / depthwise / pointwise, and `conv.dense`:
the same as a 1x1 conv per position of any rank), `tail` (the fused bias + accumulator
width + requantization + ReLU pass after every MAC), `eltwise` (relu, add, concat, pad,
nearest upsample), `upsample` (bilinear), `sigmoid`, `pool` (average pools: exact sum and
one rounded division; max pools), `multiply` (exact product, one rounding), `lut` and
`activations` (tanh, swish, hard_sigmoid, hard_swish, leaky ReLU: correctly rounded
functions of the input code, tables for words up to 16 bits), `softmax` (exact max and
sum, exp into UQ1.30, one rounded division).
Each has a slow, obviously-correct twin in `qsim.kernels.ref` (Python ints, `Fraction`)
that the tests compare with for exact equality. `float_ops` holds the float kernels.

Every integer kernel follows one contract: codes in, exact integer arithmetic (int64, or
float64 BLAS only where ``|sum| < 2**53`` is proved from the formats or the data), then one
rescale to the output format with the plan's rounding and overflow modes: `qsim.fixed.rescale`,
or its fused compiled twin `qsim.kernels.tail` (tested code for code against the same
references). Codes travel between MAC layers as integer-valued float64 when the word has at
most 53 bits (exact, and what BLAS reads); the executor stores int64 codes in the trace.

Support modules: `blas` (matrix products in row blocks on a small thread pool, NumPy's
OpenBLAS pinned to one thread), `workspace` (large output buffers recycled once nothing
refers to them: no page faults per layer).

Threads: the compiled kernels run on Numba's OpenMP workers between NumPy BLAS calls.
By default libgomp workers spin-wait after every parallel region and steal the cores
OpenBLAS's threads need (and the reverse): on the 2-core dev machine the A98 integer run
took 2.6x longer. So, unless the user chose otherwise, ``OMP_WAIT_POLICY=PASSIVE`` is set
here, before Numba loads its OpenMP layer (it only changes how idle workers wait, never a
result).

Vector width: on AVX-512 hosts LLVM's tuning for recent Intel cores prefers 256-bit vectors;
the kernels here are loops over int64/float64 lanes that gain from 512-bit ones (one-thread
CPU of the A98 500x500 integer run: ~140 -> ~129 ms, `bench/RESULTS.md`). So, unless the
user set ``NUMBA_CPU_FEATURES`` or ``QSIM_NUMBA_512=0``, Numba's feature string becomes the
host's plus ``-prefer-256-bit``, before anything is compiled. This applies to all Numba code
compiled afterwards in the process; it never changes a result: integer lanes are exact,
and without ``fastmath`` LLVM does not reorder float operations, whatever the width.
"""
import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _prefer_512_bit_vectors() -> None:
    if "NUMBA_CPU_FEATURES" in _os.environ or _os.environ.get("QSIM_NUMBA_512", "1") == "0":
        return
    import numba
    from llvmlite import binding

    if numba.config.CPU_FEATURES is not None:
        return
    features = binding.get_host_cpu_features()
    if features.get("avx512f"):
        numba.config.CPU_FEATURES = features.flatten() + ",-prefer-256-bit"


_prefer_512_bit_vectors()
