"""``qsim profile MODEL --images DIR``: per-layer ranges, integer bits, a suggested plan.

Runs the float executor on ``--n`` images of ``DIR`` (deterministic sample, ``--seed``,
scaled by ``--preprocess``) or on every sample of ``--input X.npy`` (batch first) and
prints per node: activation min..max and 1st..99th percentile, the integer bits that range
needs in a ``--word-bits`` signed word, the weights' range and bits, and the suggested
formats. The suggestion adds ``--margin-bits`` integer bits to every activation range
(calibration images do not bound unseen ones); weights and biases are known exactly and
get no margin (`qsim.analysis.profile` states the rules). ``--plan-out`` writes it as a
plan file for ``qsim run/compare --plan``; ``--plot`` draws the paper's Fig. 3.

JSON (``--json OUT``), schema version 1::

    {
      "qsim_profile": 1, "model": "m.h5", "images": [...], "input": "x.npy" | null,
      "preprocess": "mobilenet" | null, "input_hw": [H, W] | null,
      "n_images": 100, "word_bits": 16, "margin_bits": 1, "acc_bits": 32,
      "percentiles": [0.1, 1, 50, 99, 99.9],
      "notes": ["head: weights Q0.15 -> Q3.12 so the 32-bit accumulator ...", ...],
      "layers": [{"name": .., "op": ..,
                  "act": {"count", "min", "max", "mean", "std", "zeros",
                          "percentiles": {"p0.1": .., ...}, "int_bits": ..},
                  "weights": {... same ...} (layers with parameters),
                  "bias": {...},
                  "suggested": {"act": "Q7.8", "weights": "Q2.13", "bias": ".."} | null}, ...]
    }
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qsim.cli.compare import model_samples
from qsim.cli.run import (
    ROUNDINGS,
    add_job_arguments,
    add_size_argument,
    load_graph,
)
from qsim.cli.values import overflow_name, rounding_name
from qsim.errors import QsimError

SCHEMA_VERSION = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    from qsim.cli.inputs import add_input_arguments

    p.add_argument("model", help="Keras model (.h5 / .keras)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", metavar="DIR", help="folder of JPEG/PNG calibration images")
    add_input_arguments(p, source)
    p.add_argument("--n", type=int, default=100, help="number of images, sampled with --seed (100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the image sample (0)")
    p.add_argument("--word-bits", type=int, default=16, choices=(8, 16), help="word size of the plan (16)")
    p.add_argument("--margin-bits", type=int, default=1,
                   help="extra integer bits on activations, 0 .. word bits - 1 (1)")
    p.add_argument("--acc-bits", type=int, default=32, help="accumulator width of the suggested plan (32)")
    p.add_argument("--rounding", default="half_up", type=rounding_name, metavar="MODE",
                   help=f"rounding of the plan: {', '.join(ROUNDINGS)} or e.g. AP_RND_CONV (half_up)")
    p.add_argument("--overflow", default="saturate", type=overflow_name, metavar="MODE",
                   help="overflow of the plan: saturate, wrap (saturate)")
    add_size_argument(p)
    add_job_arguments(p, cache=False)
    p.add_argument("--plan-out", metavar="PLAN.json", help="write the suggested per-layer plan")
    p.add_argument("--json", metavar="OUT", help="write the statistics as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="plot the per-layer ranges (paper's Fig. 3)")


def run(args: argparse.Namespace) -> int:
    from qsim.analysis.samples import profile_samples
    from qsim.cli.files import check_outputs, write_json_file
    check_outputs(args, files=("--json", "--plot", "--plan-out"))
    if args.margin_bits < 0:
        raise QsimError(f"--margin-bits must be >= 0, got {args.margin_bits}")
    if args.margin_bits > args.word_bits - 1:  # was clamped silently (issue 17)
        raise QsimError(f"--margin-bits {args.margin_bits} leaves no bits of a {args.word_bits}-bit word; "
                        f"at most {args.word_bits - 1}")
    graph = load_graph(args.model)
    files, size, sources, load = model_samples(args, graph)
    prof = profile_samples(args.model, sources, load=load, workers=args.workers, scheduler=args.scheduler,
                           progress=sys.stderr.isatty())
    print(f"{graph.name}: {prof.n_images} {'sample' if args.input else 'image'}(s), {args.word_bits}-bit words, "
          f"activation margin {args.margin_bits} bit(s)")
    print(prof.render(args.word_bits, args.margin_bits, args.acc_bits))
    if args.plan_out:
        plan = prof.suggest_plan(args.word_bits, args.margin_bits, acc_bits=args.acc_bits,
                                 rounding=args.rounding, overflow=args.overflow)
        plan.validate(graph)
        _check_folder(args.plan_out)
        plan.save(args.plan_out)
        print(f"wrote {args.plan_out} ({plan.describe()})")
    if args.json:
        doc = {"qsim_profile": SCHEMA_VERSION, "model": str(args.model),
               "images": [str(f) for f in files], "input": args.input,
               "preprocess": None if args.input else args.preprocess.name,
               "input_hw": None if size is None else list(size)}
        doc.update(prof.to_dict(args.word_bits, args.margin_bits, args.acc_bits))
        write_json_file(doc, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        from qsim.analysis.plots import plot_profile

        plot_profile(prof, Path(args.plot))
        print(f"wrote {args.plot}")
    return 0


def _check_folder(path: str) -> None:
    folder = Path(path).parent
    if not folder.is_dir():
        raise QsimError(f"cannot write {path}: folder {folder} does not exist")
