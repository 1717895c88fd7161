"""Sweep scaling: the same cold FDDB sweep in one process, on N processes and on Dask.

    QSIM_DATA=../shared/data PYTHONPATH=. python bench/bench_scaling.py --limit 40 --formats fp32,q9 --json scaling.json

Every configuration runs `qsim.facedet.sweep.sweep` with ``use_cache=False`` on the same
pictures and formats, one after the other in this process, and must give the same AP and
overflow counts (checked: a scaling figure of a run that computed something else is
worthless). Reported: wall seconds, speed-up over one process, pictures x formats per second.
``--scheduler tcp://HOST:PORT`` adds an existing cluster to the rows.
"""
from __future__ import annotations

import argparse
import time

from common import machine_facts, model_path, print_and_save


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="Keras model (default: the bundled A98)")
    p.add_argument("--limit", type=int, default=40, help="FDDB pictures (40)")
    p.add_argument("--formats", default="fp32,q9", help="formats swept (fp32,q9)")
    p.add_argument("--mode", default="weights", choices=("weights", "full"))
    p.add_argument("--targets", default="workers:1,workers:2,local:1,local:2",
                   help="comma list of workers:N / local:N (default workers:1,workers:2,local:1,local:2)")
    p.add_argument("--scheduler", help="also run on this Dask scheduler (tcp://HOST:PORT)")
    p.add_argument("--json", help="write the result here")
    args = p.parse_args()

    from qsim.facedet.fddb import load_fddb
    from qsim.facedet.sweep import sweep

    model = model_path(args.model)
    ds = load_fddb(None).limit(args.limit)
    targets = args.targets.split(",") + ([args.scheduler] if args.scheduler else [])
    facts = machine_facts()
    rows, reference = [], None
    for target in targets:
        if target.startswith("workers:"):
            where = {"workers": int(target.split(":")[1])}
        else:
            where = {"scheduler": target}
        t0 = time.perf_counter()
        res = sweep(model, ds, args.formats, mode=args.mode, use_cache=False, progress=False, **where)
        seconds = time.perf_counter() - t0
        numbers = [(r.format, r.ap, r.overflow and r.overflow.total_events) for r in res.rows]
        if reference is None:
            reference = numbers
        if numbers != reference:
            raise SystemExit(f"{target}: different numbers {numbers} vs {reference}")
        rows.append({"target": target, "seconds": round(seconds, 2),
                     "work_per_s": round(len(ds) * len(res.rows) / seconds, 3)})
        print(f"{target}: {seconds:.1f} s", flush=True)
    base = rows[0]["seconds"]
    for row in rows:
        row["speedup"] = round(base / row["seconds"], 2)
    print_and_save({"bench": "sweep_scaling", "model": str(model), "pictures": len(ds), "formats": args.formats,
                    "mode": args.mode, "numbers": reference, "rows": rows, "machine": facts,
                    "loadavg_end": machine_facts()["loadavg"]}, args.json)


if __name__ == "__main__":
    main()
