"""``qsim export MODEL --plan P | --format F --out DIR [--target c|hls]``: deployment headers.

Writes one C header per MAC layer (weights and biases as ``static const intN_t`` arrays in
the plan's formats, a ``#define`` per shift) and ``model.h``; ``--target hls`` adds the
``ap_fixed<W,I,Q,O>`` typedefs per layer and ``hls4ml_config.json`` (`qsim.export`).
Only Q-format plans: ``--format fp16|k210|fp32`` are refused.

``qsim export MODEL.tflite --out DIR [--target c]``: an int8 / uint8 TFLite model's MAC
parameters (weights, int32 biases, per-channel multipliers and shifts, offsets) as C headers
in CMSIS-NN's naming (`qsim.export.tflite`). ``qsim export MODEL.kmodel --out DIR``: every
KPU layer's register words, BN and activation tables and weights (`qsim.export.k210`).
Both carry their own numbers (no --format / --plan).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from qsim.cli.files import quantized_model_suffix
from qsim.cli.run import add_number_arguments, executor_and_plan, load_graph
from qsim.errors import PlanError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="Keras model (.h5 / .keras, with --format or --plan), .tflite or .kmodel (v4)")
    add_number_arguments(p).required = False  # a .tflite or .kmodel carries its own numbers
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the headers")
    p.add_argument("--target", default="c", choices=("c", "hls"), help="c headers, or hls (+ ap_fixed, hls4ml)")


def _tflite(args: argparse.Namespace) -> list[Path]:
    from qsim.export.tflite import export
    from qsim.tflite import read_tflite

    return export(read_tflite(args.model), args.out, model_name=Path(args.model).name)


def _kmodel(args: argparse.Namespace) -> list[Path]:
    from qsim.errors import InputError
    from qsim.export.k210 import export
    from qsim.k210.kmodel_v3 import kmodel_version

    if kmodel_version(args.model) == 3:
        raise InputError(f"{args.model}: a kmodel v3; the export reads kmodel v4 files")
    return export(args.model, args.out, model_name=Path(args.model).name)


BACKENDS = {".tflite": (_tflite, "TFLite int8/uint8 parameters"), ".kmodel": (_kmodel, "KPU layer registers and tables")}


def run(args: argparse.Namespace) -> int:
    from qsim.export import export

    suffix = quantized_model_suffix(args)
    if suffix is not None:
        if args.target != "c":
            raise PlanError(f"{args.model}: --target {args.target}: a {suffix} model exports as C headers (--target c)")
        fn, what = BACKENDS[suffix]
        files = fn(args)
        print(f"{Path(args.model).name}: wrote {len(files)} files to {args.out} ({what})")
        return 0
    graph = load_graph(args.model)
    executor, plan = executor_and_plan(args, graph)
    if executor != "fixed":
        raise PlanError(f"export needs a Q-format plan (--format Q6.9 or --plan); got {executor}")
    files = export(graph, plan, args.out, target=args.target)
    print(f"{graph.name}: wrote {len(files)} files to {args.out} ({plan.describe()})")
    return 0
