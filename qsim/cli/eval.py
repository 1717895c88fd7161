"""``qsim eval MODEL --data D.npz --formats fp32,fp16,q9,...``: a task metric per number format.

Any model, any task: the inputs ``x`` (samples on axis 0, already preprocessed as the model
expects) and optional labels ``y`` come from an ``.npz`` (``--x KEY --y KEY``) or an
``.npy``. ``--metric top1|top5|mse|auc|agreement`` (default: from the labels; agreement
with the float model without labels). Prints one row per format: the metric with its
bootstrap interval (``--bootstrap N``), the agreement with fp32 and the overflow events.
Results are cached like ``qsim sweep`` (``--cache`` / ``--no-cache``). See
`qsim.analysis.evaluate` and docs/analysis.md.
"""
from __future__ import annotations

import argparse

from qsim.cli.run import add_calibration_arguments, add_job_arguments, job_options
from qsim.cli.values import overflow_name, rounding_name


def add_arguments(p: argparse.ArgumentParser) -> None:
    from qsim.analysis.metrics import METRICS

    p.add_argument("model", help="Keras model (.h5 / .keras)")
    p.add_argument("--data", required=True, metavar="D.npz", help="inputs (and labels): .npz or .npy")
    p.add_argument("--x", metavar="KEY", help="input array in --data (default x, or its only array)")
    p.add_argument("--y", metavar="KEY", help="label array in --data (default y when present)")
    p.add_argument("--formats", default="fp32,fp16,q9",
                   help="comma list: fp32, fp16, qN, Qm.n, plan .json, k210, tflite:F (fp32,fp16,q9)")
    p.add_argument("--metric", choices=tuple(METRICS), help="default: top1 for class labels, mse for "
                   "real-valued targets, auc for 0/1 labels of a one-score model, agreement without labels")
    p.add_argument("--mode", choices=("weights", "full"), default="weights",
                   help="Q formats: weights = quantized parameters only, full = integer activations too")
    p.add_argument("--acc-bits", type=int, default=32, help="accumulator width for --mode full (32)")
    p.add_argument("--rounding", default="half_up", type=rounding_name, metavar="MODE", help="(half_up)")
    p.add_argument("--overflow", default="saturate", type=overflow_name, metavar="MODE", help="(saturate)")
    add_calibration_arguments(p)
    p.add_argument("--limit", type=int, metavar="N", help="first N samples only")
    p.add_argument("--batch", type=int, default=32, help="samples per run (32; results do not depend on it)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N", help="95%% bootstrap intervals, N resamples")
    add_job_arguments(p)
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="bar chart of the metric per format")


def run(args: argparse.Namespace) -> int:
    from qsim.analysis.evaluate import evaluate, load_data
    from qsim.cli.files import check_input_file, check_outputs, write_result_files
    from qsim.errors import InputError

    check_outputs(args, files=("--json", "--plot"), dirs=() if args.no_cache else ("--cache",))
    check_input_file(args.model, "model file")
    x, y = load_data(args.data, args.x, args.y)
    if args.limit is not None:
        if args.limit <= 0:
            raise InputError(f"--limit must be positive; got {args.limit}")
        x, y = x[: args.limit], None if y is None else y[: args.limit]
    result = evaluate(args.model, x, y, args.formats, metric=args.metric, mode=args.mode, batch=args.batch,
                      **job_options(args), bootstrap=args.bootstrap, data_name=str(args.data), acc_bits=args.acc_bits,
                      rounding=args.rounding, overflow=args.overflow, calibration=args.calibration,
                      calibration_count=args.calibration_count)
    print(f"{result.model} on {result.data}: {result.n_samples} samples, metric {result.metric}")
    print()
    print(result.markdown())
    write_result_files(result, args)
    return 0
