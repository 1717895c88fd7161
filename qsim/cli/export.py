"""``qsim export MODEL --plan P | --format F --out DIR [--target c|hls]``: deployment headers.

Writes one C header per MAC layer (weights and biases as ``static const intN_t`` arrays in
the plan's formats, a ``#define`` per shift) and ``model.h``; ``--target hls`` adds the
``ap_fixed<W,I,Q,O>`` typedefs per layer and ``hls4ml_config.json`` (`qsim.export`).
Only Q-format plans: ``--format fp16|k210|fp32`` are refused.

``qsim export MODEL.tflite --out DIR [--target c]``: an int8 / uint8 TFLite model's MAC
parameters (weights, int32 biases, per-channel multipliers and shifts, offsets) as C headers
in CMSIS-NN's naming (`qsim.tflite.export`); the model carries its own numbers (no --format).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from qsim.cli.run import add_number_arguments, executor_and_plan, load_graph
from qsim.errors import PlanError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="Keras model (.h5 / .keras, with --format or --plan) or .tflite")
    add_number_arguments(p).required = False  # a .tflite carries its own numbers
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the headers")
    p.add_argument("--target", default="c", choices=("c", "hls"), help="c headers, or hls (+ ap_fixed, hls4ml)")


def _tflite(args: argparse.Namespace) -> int:
    from qsim.cli.files import check_input_file
    from qsim.tflite import read_tflite
    from qsim.tflite.export import export

    check_input_file(args.model, "model file")
    if args.format or args.plan:
        raise PlanError(f"{args.model}: --format / --plan are for Keras models; a .tflite carries its own quantization")
    if args.target != "c":
        raise PlanError(f"{args.model}: --target {args.target}: a .tflite model exports as C headers (--target c)")
    files = export(read_tflite(args.model), args.out, model_name=Path(args.model).name)
    print(f"{Path(args.model).name}: wrote {len(files)} files to {args.out} (TFLite int8/uint8 parameters)")
    return 0


def run(args: argparse.Namespace) -> int:
    from qsim.export import export

    if Path(args.model).suffix.lower() == ".tflite":
        return _tflite(args)
    if not (args.format or args.plan):
        raise PlanError(f"{args.model}: a Keras model needs a Q-format plan (--format Q6.9 or --plan P)")
    graph = load_graph(args.model)
    executor, plan = executor_and_plan(args, graph)
    if executor != "fixed":
        raise PlanError(f"export needs a Q-format plan (--format Q6.9 or --plan); got {executor}")
    files = export(graph, plan, args.out, target=args.target)
    print(f"{graph.name}: wrote {len(files)} files to {args.out} ({plan.describe()})")
    return 0
