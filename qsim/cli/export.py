"""``qsim export MODEL --plan P | --format F --out DIR [--target c|hls]``: deployment headers.

Writes one C header per MAC layer (weights and biases as ``static const intN_t`` arrays in
the plan's formats, a ``#define`` per shift) and ``model.h``; ``--target hls`` adds the
``ap_fixed<W,I,Q,O>`` typedefs per layer and ``hls4ml_config.json`` (`qsim.export`).
Only Q-format plans: ``--format fp16|k210|fp32`` are refused.
"""
from __future__ import annotations

import argparse

from qsim.cli.run import add_number_arguments, executor_and_plan, load_graph
from qsim.errors import PlanError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="Keras model (.h5 / .keras)")
    add_number_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the headers")
    p.add_argument("--target", default="c", choices=("c", "hls"), help="c headers, or hls (+ ap_fixed, hls4ml)")


def run(args: argparse.Namespace) -> int:
    from qsim.export import export

    graph = load_graph(args.model)
    executor, plan = executor_and_plan(args, graph)
    if executor != "fixed":
        raise PlanError(f"export needs a Q-format plan (--format Q6.9 or --plan); got {executor}")
    files = export(graph, plan, args.out, target=args.target)
    print(f"{graph.name}: wrote {len(files)} files to {args.out} ({plan.describe()})")
    return 0
