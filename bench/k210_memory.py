"""K210 KPU RAM plan of the paper's A98 detector: alpha x input size (Markdown + JSON).

Builds A98 (MobileNetV2 cut at block_13_expand_relu + 1x1 125-channel head, weights do not
matter for memory) with `reference.models.build_model` (TensorFlow), exports it to legacy
HDF5, reads it back with `qsim.load_model(..., symmetric_pads=True)` and runs
`qsim.k210.memory.plan_memory` (nncase 1.x lowering, residual add as concat + 1x1 KPU conv).

    PYTHONPATH=. python bench/k210_memory.py [--alphas 1.0,0.5,0.35] [--sizes 224,320,500] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

MIB = 1024 * 1024


def build_h5(alpha: float, folder: Path) -> Path:
    from reference.export import export_h5
    from reference.models import build_model

    path = folder / f"A98_alpha{alpha}.h5"
    if not path.exists():
        export_h5(build_model("A", alpha=alpha, input_shape=(None, None, 3), frozen=98, weights=None), path)
    return path


def main(argv=None) -> int:
    from qsim.k210.memory import plan_memory
    from qsim.k210.perf import estimate
    from qsim.model import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alphas", default="1.0,0.5,0.35")
    ap.add_argument("--sizes", default="224,320,500")
    ap.add_argument("--json", default=None)
    ap.add_argument("--models", default=None, help="folder for the exported .h5 files (default: a temp dir)")
    args = ap.parse_args(argv)
    alphas = [float(a) for a in args.alphas.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    folder = Path(args.models or tempfile.mkdtemp(prefix="k210mem"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for alpha in alphas:
        h5 = build_h5(alpha, folder)
        for size in sizes:
            graph = load_model(h5, input_hw=(size, size), symmetric_pads=True)
            plan = plan_memory(graph, (size, size))
            perf = estimate(graph, (size, size))
            peak = plan.peak
            rows.append({"alpha": alpha, "size": size, "peak_mib": peak.total / MIB, "peak_layer": peak.name,
                         "fits": plan.fits, "first_unfit": plan.first_unfit.name if plan.first_unfit else None,
                         "first_limit": (f"{plan.first_limit.name}: {plan.first_limit.limits[0]}"
                                         if plan.first_limit else None),
                         "fps": perf.fps, "kpu_ms": perf.kpu_seconds * 1e3, "cpu_ms": perf.cpu_seconds * 1e3,
                         "gmac": perf.macs / 1e9})
    print("| alpha | input | peak in+out (MiB) | at layer | fits 2 MiB | first layer over | nncase limit broken "
          "| est. FPS (KPU ms + CPU ms) | GMAC |")
    print("|---|---|---:|---|---|---|---|---|---:|")
    for r in rows:
        print(f"| {r['alpha']} | {r['size']}x{r['size']} | {r['peak_mib']:.3f} | {r['peak_layer']} | "
              f"{'yes' if r['fits'] else 'no'} | {r['first_unfit'] or '-'} | {r['first_limit'] or '-'} | "
              f"{r['fps']:.1f} ({r['kpu_ms']:.1f} + {r['cpu_ms']:.1f}) | {r['gmac']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
