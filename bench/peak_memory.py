"""Peak resident memory of one full-integer run (issue 14: a 1000x1000 input).

    PYTHONPATH=. python bench/peak_memory.py [--size 1000] [--format Q6.9] [--acc-bits 32]

Loads the bundled A98, prepares the fixed program (uniform plan, counting on, tensors freed
as soon as their last reader ran, as sweeps run), and prints the process's peak RSS before
and after one run on a random input of that size (``ru_maxrss``: the high-water mark).
"""
from __future__ import annotations

import argparse
import resource
import sys

import numpy as np
from common import model_path


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model")
    p.add_argument("--size", type=int, default=1000)
    p.add_argument("--format", default="Q6.9")
    p.add_argument("--acc-bits", type=int, default=32)
    args = p.parse_args(argv)

    import qsim
    from qsim.executors import fixed_exec
    from qsim.plan import Plan

    graph = qsim.load_model(model_path(args.model))
    program = fixed_exec.prepare(graph, Plan.uniform(args.format, acc_bits=args.acc_bits).validate(graph))
    x = np.random.default_rng(0).uniform(-1, 1, (1, args.size, args.size, 3)).astype(np.float32)
    before = peak_mib()
    program.run(x, counters=True, keep_values=False)
    after = peak_mib()
    print(f"peak RSS before the run {before:.0f} MiB (interpreter, libraries, model), "
          f"after one {args.size}x{args.size} {args.format} acc{args.acc_bits} run {after:.0f} MiB "
          f"(+{after - before:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
