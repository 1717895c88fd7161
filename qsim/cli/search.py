"""``qsim search MODEL --budget "top1>=fp32-0.005" --objective weight-bits``: a mixed-precision plan.

Per-layer word lengths (weights; activations too with ``--mode full``) that minimise the
objective while the task metric, measured on real data, stays within the budget (method:
`qsim.analysis.search`). The task is either labelled data (``--data D.npz``, metric of
`qsim eval`) or face detection (``--dataset fddb``, metric ``AP`` of `qsim sweep`). Writes
the best plan (``--plan-out``, loadable by every verb), the measured points and Pareto
front (``--json``, ``--plot``); ``--compare q9,q8,q7`` measures uniform plans beside it.
"""
from __future__ import annotations

import argparse
import sys

from qsim.cli.run import add_job_arguments, job_options
from qsim.cli.values import overflow_name, rounding_name
from qsim.errors import InputError


def _words(text: str) -> tuple[int, ...]:
    try:
        if ".." in text:
            lo, hi = (int(v) for v in text.split(".."))
            words = tuple(range(lo, hi + 1))
        else:
            words = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"words must look like 4..16 or 4,8,16; got {text!r}") from None
    if not words or min(words) < 2 or max(words) > 32:
        raise argparse.ArgumentTypeError(f"words must lie in 2..32; got {text!r}")
    return words


def add_arguments(p: argparse.ArgumentParser) -> None:
    from qsim.analysis.search import OBJECTIVES

    p.add_argument("model", help="Keras model (.h5 / .keras)")
    task = p.add_mutually_exclusive_group(required=True)
    task.add_argument("--data", metavar="D.npz", help="labelled (or unlabelled) samples, as qsim eval reads them")
    task.add_argument("--dataset", choices=("fddb",), help="face detection: AP on the FDDB pictures present")
    p.add_argument("--x", metavar="KEY", help="--data: input array (default x)")
    p.add_argument("--y", metavar="KEY", help="--data: label array (default y)")
    p.add_argument("--budget", required=True,
                   help='METRIC>=fp32-DELTA or METRIC>=VALUE: "top1>=fp32-0.005", "AP>=fp32-0.01", "sqnr>=30"')
    p.add_argument("--objective", choices=OBJECTIVES, default="weight-bits", help="what to minimise (weight-bits)")
    p.add_argument("--words", type=_words, default=tuple(range(4, 17)), help="word lengths tried (4..16)")
    p.add_argument("--mode", choices=("weights", "full"), default="weights",
                   help="weights: search weight words (float activations); full: activation words too")
    p.add_argument("--acc-bits", type=int, default=32, help="accumulator width in --mode full (32)")
    p.add_argument("--rounding", default="half_up", type=rounding_name, metavar="MODE", help="(half_up)")
    p.add_argument("--overflow", default="saturate", type=overflow_name, metavar="MODE", help="(saturate)")
    p.add_argument("--proxy-n", type=int, default=8, metavar="N",
                   help="samples (pictures, at --proxy-size) for profile and sensitivity (8)")
    p.add_argument("--proxy-size", default="128x128", metavar="HxW", help="fddb: picture size of the proxy (128x128)")
    p.add_argument("--limit", type=int, metavar="N", help="task metric on the first N samples / pictures only")
    p.add_argument("--compare", metavar="F,F", help="uniform formats measured beside the search, e.g. q9,q8,q7")
    add_job_arguments(p)  # for the task-metric runs
    p.add_argument("--plan-out", metavar="PLAN.json", help="write the best plan")
    p.add_argument("--json", metavar="OUT", help="write every measured point, the Pareto front and the best plan")
    p.add_argument("--plot", metavar="OUT.png", help="objective vs metric: measured points and Pareto front")


def _data_task(args, graph):
    from qsim.analysis.evaluate import evaluate, load_data

    x, y = load_data(args.data, args.x, args.y)
    if args.limit:
        x, y = x[: args.limit], None if y is None else y[: args.limit]
    common = dict(job_options(args), progress=False)

    def measure(fmt, metric):
        return evaluate(graph, x, y, [fmt], metric=metric, graph=graph, **common).rows[0].value

    return x[: args.proxy_n].astype("float32"), measure


def _fddb_task(args, graph):
    import numpy as np

    from qsim.facedet.fddb import load_fddb
    from qsim.facedet.sweep import sweep
    from qsim.images import load_image, mobilenet_preprocess, resize_bilinear

    ds = load_fddb(None)
    if args.limit:
        ds = ds.limit(args.limit)
    try:
        h, w = (int(v) for v in args.proxy_size.lower().split("x"))
    except ValueError:
        raise InputError(f"--proxy-size must look like 128x128; got {args.proxy_size!r}") from None
    proxy = np.stack([mobilenet_preprocess(resize_bilinear(load_image(im.path), (h, w)))
                      for im in ds.images[: args.proxy_n]]).astype(np.float32)
    common = dict(job_options(args), progress=False, graph=graph)

    def measure(fmt, metric):
        return sweep(args.model, ds, [fmt], **common).rows[0].ap

    return proxy, measure


def run(args: argparse.Namespace) -> int:
    from qsim.analysis.formats import NumberFormat, parse_formats
    from qsim.analysis.search import Budget, SearchSpace, search
    from qsim.cli.files import check_outputs, write_result_files
    from qsim.cli.run import load_graph
    from qsim.runtime import backend_for

    check_outputs(args, files=("--json", "--plot", "--plan-out"), dirs=() if args.no_cache else ("--cache",))
    budget = Budget.parse(args.budget)
    if args.proxy_n < 1:
        raise InputError(f"--proxy-n must be >= 1; got {args.proxy_n}")
    graph = load_graph(args.model)
    proxy, measure_with = (_data_task if args.data else _fddb_task)(args, graph)
    metric = budget.metric
    if args.dataset and metric != "ap":
        raise InputError(f"--dataset fddb measures AP; the budget names {metric!r} (e.g. AP>=fp32-0.01)")
    reference = measure_with(parse_formats("fp32")[0], metric)
    space = SearchSpace(graph, proxy, args.words, mode=args.mode, acc_bits=args.acc_bits, rounding=args.rounding,
                        overflow=args.overflow, objective=args.objective)
    baselines = {}
    if args.compare:
        for fmt in parse_formats(args.compare, mode=args.mode, acc_bits=args.acc_bits, rounding=args.rounding,
                                 overflow=args.overflow):
            if fmt.plan is None or fmt.plan.mode.value == "fp16":
                raise InputError(f"--compare {fmt.name}: only Q formats and plans are compared")
            baselines[fmt.name] = fmt.plan
    print(f"{graph.name}: {len(space.knobs)} knobs x {len(space.words)} words; fp32 {metric} = {reference:.4f}",
          file=sys.stderr)
    result = search(space, lambda plan: measure_with(NumberFormat("search", backend_for(plan), plan), metric),
                    reference, budget, baselines=baselines)
    print(result.markdown())
    if args.plan_out and result.best_plan is not None:
        result.best_plan.save(args.plan_out)
        print(f"wrote {args.plan_out}", file=sys.stderr)
    write_result_files(result, args)
    return 0 if result.best is not None else 1
