"""Per-layer overflow across a ladder of 16-bit formats and accumulator widths.

For every accumulator width (``--acc-bits``, default 48, 40, 32) and every 16-bit format of
the ladder (``--formats``, default Q2.13, Q3.12, ..., Q10.5), a uniform full-integer plan
(``Plan.uniform(fmt, acc_bits=...)``, half_up, saturate) runs the fixed executor on
``--n`` FDDB calibration images (deterministic sample, resized to ``--size``), and the
overflow counters are merged per layer and site (`qsim.analysis.overflow`).

Outputs (``--out`` prefix, default ``overflow`` in the current folder, so a trial run never
overwrites the committed ``bench/overflow.json`` / ``bench/overflow_acc32.png``; pass
``--out bench/overflow`` to regenerate those):

* ``<out>_acc<W>.png``: layer x format heatmap of each layer's overflow rate (events /
  elements at its worst site; white = no overflow), one per accumulator width;
* ``<out>.json``: every cell per width: total events, and per layer its lowest headroom
  (bits) and, for layers that overflow, events, worst site and its rate;
* stdout: Markdown tables (totals per format and width; the layers that overflow).

A 16-bit x 16-bit product needs 32 bits, so `Plan.validate` rejects narrower accumulators
for these formats (the accumulator holds full products, nothing is rounded before it);
such cells are reported as rejected instead of being run.

    nice -n 10 python bench/bench_overflow.py --n 8 --size 320 --out bench/overflow
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fddb_images, machine_facts, model_path

LADDER = tuple(f"Q{m}.{15 - m}" for m in range(2, 11))


def _compact(report) -> dict:
    """A cell of the JSON: totals, every layer's headroom, details of overflowing layers."""
    def bits(v):
        return v if v in (float("inf"), float("-inf")) else round(v, 3)

    return {
        "total_events": report.total_events,
        "headroom_bits": {name: bits(layer.headroom_bits) for name, layer in report.layers.items()
                          if layer.sites},
        "overflowing": {name: {"events": layer.events, "worst_site": layer.worst_site,
                               "worst_rate": layer.worst_rate,
                               "sites": {s: [c.events, c.elements] for s, c in layer.sites.items() if c.events}}
                        for name, layer in report.layers.items() if layer.events},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="Keras .h5 (default: bundled A98 alpha 1.0, see bench/common.py)")
    p.add_argument("--n", type=int, default=8, help="calibration images from FDDB (8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=320, help="square input size (320)")
    p.add_argument("--formats", default=",".join(LADDER), help="comma-separated formats")
    p.add_argument("--acc-bits", default="48,40,32", help="comma-separated accumulator widths")
    p.add_argument("--out", default="overflow",
                   help="output prefix for .json and _acc<W>.png (default ./overflow; the committed "
                        "figures are bench/overflow)")
    args = p.parse_args(argv)

    import qsim
    from qsim.analysis.overflow import OverflowReport
    from qsim.analysis.plots import plot_heatmap
    from qsim.analysis.report import fmt_num, fmt_pct, markdown_table, to_jsonable
    from qsim.cli.run import load_input
    from qsim.errors import PlanError
    from qsim.executors import fixed_exec
    from qsim.plan import Plan

    facts = machine_facts()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    widths = [int(w) for w in args.acc_bits.split(",") if w.strip()]
    path = model_path(args.model)
    graph = qsim.load_model(path)
    files = fddb_images(args.n, args.seed)
    inputs = [load_input(f, (args.size, args.size))[0] for f in files]

    cells: dict[int, dict[str, dict]] = {}
    t0 = time.perf_counter()
    for width in widths:
        cells[width] = {}
        for fmt in formats:
            try:
                plan = Plan.uniform(fmt, acc_bits=width).validate(graph)
            except PlanError as exc:
                cells[width][fmt] = {"rejected": str(exc)}
                print(f"acc {width}, {fmt}: rejected ({exc})", file=sys.stderr)
                continue
            report = OverflowReport(graph)
            program = fixed_exec.prepare(graph, plan)
            for x in inputs:
                report.update(program.run(x, counters=True, keep_values=False))
            cells[width][fmt] = report
            first = report.first_overflow()
            print(f"acc {width}, {fmt}: {report.total_events} events"
                  + (f", first at {first.name}" if first else ""), file=sys.stderr)
    elapsed = time.perf_counter() - t0

    layer_names = [n.name for n in graph if n.op not in ("pad", "identity")]
    doc = {"model": str(path), "images": [str(f) for f in files], "size": args.size, "formats": formats,
           "acc_bits": widths, "seconds": elapsed, "machine": facts, "cells": {}}
    lines = [f"model {path.name}, {len(files)} FDDB image(s) at {args.size}x{args.size}, "
             f"half_up/saturate, {elapsed:.0f} s", ""]
    total_rows = []
    for width in widths:
        matrix = np.zeros((len(layer_names), len(formats)))
        doc["cells"][str(width)] = {}
        for j, fmt in enumerate(formats):
            cell = cells[width][fmt]
            if isinstance(cell, dict):
                doc["cells"][str(width)][fmt] = cell
                total_rows.append([str(width), fmt, "rejected", "-", "-", "-"])
                matrix[:, j] = np.nan
                continue
            for i, name in enumerate(layer_names):
                layer = cell.layers.get(name)
                matrix[i, j] = layer.worst_rate if layer is not None else 0.0
            doc["cells"][str(width)][fmt] = _compact(cell)
            over = [layer for layer in cell.layers.values() if layer.events]
            acc_events = sum(layer.sites["acc"].events for layer in cell.layers.values() if "acc" in layer.sites)
            first = cell.first_overflow()
            total_rows.append([str(width), fmt, str(cell.total_events), str(acc_events), str(len(over)),
                               first.name if first else "-"])
        if not np.all(np.isnan(matrix)):
            png = Path(f"{args.out}_acc{width}.png")
            plot_heatmap(np.nan_to_num(matrix, nan=0.0), layer_names, formats, png,
                         title=f"{path.name}: per-layer overflow rate, acc {width} bits, "
                               f"{len(files)} FDDB images at {args.size}px")
            lines.append(f"heatmap: {png}")
    lines += ["", markdown_table(["acc bits", "format", "overflow events", "of which acc", "layers overflowing",
                                  "first overflowing layer"], total_rows, align="rlrrrl")]
    # the layers that overflow at the widest accumulator, per format (rate at the worst site)
    width = widths[0]
    rows = []
    for name in layer_names:
        rates = []
        for fmt in formats:
            cell = cells[width][fmt]
            layer = None if isinstance(cell, dict) else cell.layers.get(name)
            rates.append(layer.worst_rate if layer is not None else None)
        if any(r for r in rates):
            rows.append([name, *[fmt_pct(r) if r else "." for r in rates]])
    lines += ["", f"layers with overflow (acc {width}; worst-site rate; '.' = none):", "",
              markdown_table(["layer", *formats], rows, align="l" + "r" * len(formats))]
    lines += ["", f"machine: {facts['nproc']} x {facts['cpu']}, load average {facts['loadavg']}"]
    text = "\n".join(lines)
    print(text)
    out_json = Path(f"{args.out}.json")
    out_json.write_text(json.dumps(to_jsonable(doc), indent=1) + "\n")
    print(f"\nwrote {out_json} ({fmt_num(out_json.stat().st_size / 1e6)} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
