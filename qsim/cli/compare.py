"""``qsim compare MODEL --images DIR --format ... | --plan ...``: per-layer error against float.

Runs the quantized executor and the float executor on the same ``--n`` images of ``DIR``
(a deterministic sample, ``--seed``, scaled by ``--preprocess``), or on every sample of
``--input X.npy`` (an array, batch first, any rank: `qsim.cli.inputs`), and prints, per node in graph order: format, max abs
error, RMS error, SQNR in dB and the share of outputs more than one LSB of the node's
format away from float (definitions in `qsim.analysis.compare`), then the first layer whose
SQNR falls below ``--sqnr-threshold``, and the overflow events the quantized runs counted
(per layer in the table, totals and first overflowing layer below it). ``--format fp16`` and ``--format k210`` go through
the same comparison (no LSB column: their values have no Q format).

JSON (``--json OUT``), schema version 1::

    {
      "qsim_compare": 1,
      "model": "m.h5", "images": ["a.jpg", ...], "input": "x.npy" | null,
      "preprocess": "mobilenet" | null, "input_hw": [H, W] | null,
      "executor": "fixed", "plan": {...} | null,
      "reference": "float", "test": "fixed", "n_images": 8, "outputs": ["head"],
      "sqnr_threshold_db": 20.0, "first_below_threshold": "block_3_add" | null,
      "layers": [{"name": .., "op": .., "shape": [..], "format": "Q6.9" | null,
                  "n": .., "max_abs": .., "rms": .., "signal_rms": ..,
                  "sqnr_db": .. | "inf", "lsb": .. | null, "over_1lsb": .. | null,
                  "nonfinite": 0}, ...],
      "overflow": {"n_images": 8, "total_events": N, "layers": [...]}  # OverflowReport, test runs
    }

Exit code 0 whether or not a layer falls below the threshold (it is a measurement);
1 with a one-line message on bad input.
"""
from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

from qsim.cli.run import (
    add_job_arguments,
    add_number_arguments,
    add_size_argument,
    describe,
    executor_and_plan,
    input_size,
    load_graph,
    load_input,
)
from qsim.cli.values import finite_float
from qsim.errors import InputError

SCHEMA_VERSION = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    from qsim.cli.inputs import add_input_arguments

    p.add_argument("model", help="Keras model (.h5 / .keras)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", metavar="DIR", help="folder of JPEG/PNG images (recursive)")
    add_input_arguments(p, source)
    p.add_argument("--n", type=int, default=8, help="number of images, sampled with --seed (8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the image sample (0)")
    add_job_arguments(p, cache=False)
    grp = add_number_arguments(p)
    grp.add_argument("--against", metavar="MODEL.tflite",
                     help="compare an int8/uint8 TFLite model of this Keras model (reference kernels, "
                          "dequantized) instead of a Q-format run; tensors matched by name (see docs/tflite.md)")
    add_size_argument(p)
    p.add_argument("--sqnr-threshold", type=finite_float, default=20.0, metavar="DB",
                   help="report the first layer whose SQNR falls below this (20 dB)")
    p.add_argument("--json", metavar="OUT", help="write the comparison as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="plot SQNR per layer")


def run(args: argparse.Namespace) -> int:
    from qsim.analysis.compare import render_comparison
    from qsim.analysis.samples import compare_samples
    from qsim.cli.files import check_outputs
    from qsim.cli.run import calibration_input

    check_outputs(args, files=("--json", "--plot"))
    if getattr(args, "against", None):
        return run_compare_against(args)
    graph = load_graph(args.model)
    executor, plan = executor_and_plan(args, graph)
    files, size, sources, load = model_samples(args, graph)
    calibration = calibration_input(args, graph, size) if executor == "k210" else None
    comp, overflow = compare_samples(args.model, sources, load=load, executor=executor, plan=plan,
                                     calibration=calibration, workers=args.workers, scheduler=args.scheduler,
                                     progress=sys.stderr.isatty())
    events = {name: layer.events for name, layer in overflow.layers.items()}
    print(f"{graph.name}: {describe(executor, plan)}")
    print(render_comparison(comp, args.sqnr_threshold, events))
    first = overflow.first_overflow()
    print(f"overflow events in the {comp.test} runs: {overflow.total_events}"
          + (f" (first at {first.name}, site {first.worst_site})" if first else ""))
    doc = {"qsim_compare": SCHEMA_VERSION, "model": str(args.model),
           "images": [str(f) for f in files], "input": args.input,
           "preprocess": None if args.input else args.preprocess.name,
           "input_hw": None if size is None else list(size),
           "executor": executor, "plan": None if plan is None else plan.to_dict(), "overflow": overflow.to_dict()}
    return _write_results(args, comp, doc)


def model_samples(args: argparse.Namespace, graph) -> tuple[list, tuple | None, list, Any]:
    """(image files, resize (H, W) or None, one source per sample, ``load(source) -> input`` or None) of
    ``--images`` or ``--input``, for `qsim.analysis.samples` (workers load the pictures)."""
    from qsim.cli.inputs import load_array, samples

    if args.input:
        if args.size:
            raise InputError("--size resizes images; an --input array is fed as it is")
        return [], None, list(samples(load_array(args.input, graph))), None  # fed as they are
    from qsim.images import list_images

    files = list_images(args.images, n=args.n, seed=args.seed)
    size = input_size(graph, args.size)
    return files, size, [str(f) for f in files], partial(_load_picture, size=size, preprocess=args.preprocess)


def _load_picture(path: str, size, preprocess):
    return load_input(path, size, preprocess)[0]


def _write_results(args: argparse.Namespace, comp, doc: dict) -> int:
    """``--json`` (`doc` with the comparison's own fields) and ``--plot``, as both forms of the verb write them."""
    from qsim.cli.files import write_json_file

    if args.json:
        write_json_file({**doc, **comp.to_dict(args.sqnr_threshold)}, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        from qsim.analysis.plots import plot_comparison

        plot_comparison(comp, Path(args.plot), args.sqnr_threshold)
        print(f"wrote {args.plot}")
    return 0


def run_compare_against(args) -> int:
    """``qsim compare KERAS.h5 --against MODEL.tflite --images DIR``: per layer, the TFLite run
    (reference arithmetic, dequantized) against qsim's float run of the Keras model.

    Images are resized to the TFLite input's H x W (or ``--size``) and preprocessed the
    MobileNet way (x/127.5 - 1) for both; the TFLite side quantizes that float input with its
    input tensor's parameters. JSON: `qsim compare`'s schema with ``"executor": "tflite"``
    and ``"against"``, ``"matched"`` (node -> tensor index) added.
    """
    from qsim.analysis.compare import render_comparison
    from qsim.analysis.tflite_compare import compare_against, match_nodes
    from qsim.cli.run import input_size, load_graph, load_input, progress_bar
    from qsim.images import list_images
    from qsim.runtime import prepare
    from qsim.tflite import read_tflite

    if args.input:
        raise InputError("--against compares on --images (the TFLite side quantizes images); not --input")
    model = read_tflite(args.against)
    t_in = model.tensors[model.inputs[0]]
    if len(t_in.shape) != 4 or t_in.shape[3] != 3:
        raise InputError(f"{args.against}: input {list(t_in.shape)} is not an NHWC RGB image")
    sig = t_in.signature or t_in.shape
    dynamic = sig[1] == -1 and sig[2] == -1
    if dynamic and not args.size:
        raise InputError(f"{args.against}: the input has a dynamic H x W; give --size HxW")
    size = tuple(args.size) if args.size else (int(t_in.shape[1]), int(t_in.shape[2]))
    if not dynamic and size != (t_in.shape[1], t_in.shape[2]):
        raise InputError(f"--size {size[0]}x{size[1]} differs from the TFLite input {t_in.shape[1]}x{t_in.shape[2]}")
    graph = load_graph(args.model)
    input_size(graph, size)  # checks the Keras model takes RGB images of this size
    files = list_images(args.images, n=args.n, seed=args.seed)
    matched = match_nodes(graph, model)
    comp = compare_against(graph, model, (load_input(f, size)[0] for f in files),
                           float_run=prepare(graph).run, progress=progress_bar(len(files)))
    print(f"{graph.name}: {args.against} (TFLite reference kernels, dequantized) vs float; "
          f"{len(comp.layers)} of {len(list(graph))} layers matched by name")
    print(render_comparison(comp, args.sqnr_threshold))
    doc = {"qsim_compare": SCHEMA_VERSION, "model": str(args.model), "against": str(args.against),
           "images": [str(f) for f in files], "input_hw": list(size), "executor": "tflite", "plan": None,
           "matched": matched}
    return _write_results(args, comp, doc)
