"""The arithmetic limits of this CPU for exact integer work: float32 and float64 GEMM GMAC/s.

    PYTHONPATH=. python bench/roofline.py [--threads 2] [--json roofline.json]

qsim's integer kernels are exact in float64 GEMM while sums stay below 2**53, and in float32
GEMM while they stay below 2**24 (words of 8 bits or less): these two rates are the ceilings
the integer executors can reach on the machine. Measured with NumPy's BLAS on the shapes of
the A98's layers at 500x500 (M output pixels x K input channels x N output channels), best
of 5, next to one large square GEMM.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from common import machine_facts, print_and_save

SHAPES = {  # (M, K, N): 1x1 convs of the A98 at 500x500, and a large square product
    "expand 63x63x24->144": (63 * 63, 24, 144),
    "project 32x32x576->96": (32 * 32, 576, 96),
    "head 32x32x576->125": (32 * 32, 576, 125),
    "square 2048": (2048, 2048, 2048),
}


def rate(m: int, k: int, n: int, dtype, repeats: int = 5) -> float:
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (m, k)).astype(dtype)
    b = rng.integers(-128, 128, (k, n)).astype(dtype)
    a @ b  # warm-up
    best = min(_timed(a, b) for _ in range(repeats))
    return m * k * n / best / 1e9


def _timed(a, b) -> float:
    t0 = time.perf_counter()
    a @ b
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=None, help="BLAS threads (default: as configured)")
    p.add_argument("--json")
    args = p.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    rows = {name: {"float32_gmac_s": round(rate(*shape, np.float32), 2),
                   "float64_gmac_s": round(rate(*shape, np.float64), 2)} for name, shape in SHAPES.items()}
    for name, r in rows.items():
        print(f"{name}: float32 {r['float32_gmac_s']} GMAC/s, float64 {r['float64_gmac_s']} GMAC/s")
    print_and_save({"bench": "roofline", "rows": rows, "threads": args.threads, "machine": machine_facts()}, args.json)


if __name__ == "__main__":
    main()
