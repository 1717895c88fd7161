"""``qsim sweep MODEL --dataset fddb --formats fp32,fp16,q9,q8,q7,q6``: AP per number format.

The paper's Table II: the face detector's average precision on FDDB (IoU >= 0.5, all-point
interpolation) for each number format, with parameters and storage size, next to the
paper's figures; ``--mode full`` runs integer activations too and adds overflow counts.
``vj`` adds the OpenCV Viola-Jones baseline row (Table IV). See `qsim.facedet.sweep`.

Results per (model, format, image) are cached (``--cache``, default ``~/.cache/qsim``), so a
rerun or a larger ``--limit`` only computes what is new.
"""
from __future__ import annotations

import argparse
import sys

from qsim.cli.run import add_calibration_arguments, add_job_arguments, job_options, parse_size
from qsim.cli.values import finite_float, overflow_name, overlap_float, positive_float, rounding_name, unit_float
from qsim.errors import InputError


def _scales(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"scales must be numbers like 0.5,1,2; got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"scales must be positive; got {text!r}")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="Keras face-detector model (.h5/.keras); optional with --formats vj")
    p.add_argument("--dataset", choices=("fddb", "wider"), default="fddb", help="evaluation set (fddb)")
    p.add_argument("--data", metavar="DIR",
                   help="dataset folder (default: <data>/fddb or <data>/wider, data = $QSIM_DATA or ../shared/data)")
    p.add_argument("--formats", default="fp32,fp16,q9,q8,q7,q6",
                   help="comma list: fp32, fp16, qN (paper: 16-bit word, N fraction bits; the paper's eq. 5 "
                        "reading, N-1 fraction bits, is q(N-1)), Qm.n, plan .json, k210, vj, "
                        "tflite:MODEL.tflite, kmodel:PATH (default fp32,fp16,q9,q8,q7,q6)")
    p.add_argument("--mode", choices=("weights", "full"), default="weights",
                   help="weights: quantized parameters, float activations (the paper's Table II); "
                        "full: integer activations and accumulators, overflow counted")
    p.add_argument("--acc-bits", type=int, default=32, help="accumulator width for --mode full (32)")
    p.add_argument("--rounding", default="half_up", type=rounding_name, metavar="MODE",
                   help="floor, toward_zero, half_up, half_even, half_away or e.g. AP_RND_CONV (half_up)")
    p.add_argument("--overflow", default="saturate", type=overflow_name, metavar="MODE",
                   help="saturate, wrap (saturate)")
    add_calibration_arguments(p)
    p.add_argument("--limit", type=int, metavar="N", help="first N images only (annotation order)")
    p.add_argument("--folds", default="present",
                   help="FDDB: 'present' (images on disk), 'all', or fold numbers like 1,2 (present)")
    p.add_argument("--fddb-alpha", type=positive_float, default=1.3,
                   help="FDDB box side / ellipse width (the paper's eq. 1: 1.3)")
    p.add_argument("--fddb-box", default="major_radius",
                   choices=("major_radius", "two_minor", "minor_radius", "two_major", "bbox"),
                   help="FDDB: what w_ellipse of eqs. (1)-(2) means: the major radius (default, "
                        "the first field of an ellipse line), 2 x minor radius, ..., or bbox (the "
                        "rotated ellipse's axis-aligned bounding box, no alpha/beta); see "
                        "docs/face-detection.md. Detections are cached apart from it.")
    p.add_argument("--fddb-beta", type=finite_float, default=0.26,
                   help="FDDB box centre shift down / ellipse width (the paper's eq. 2: 0.26)")
    p.add_argument("--wider-invalid", choices=("ignore", "drop", "keep"), default="ignore",
                   help="WIDER faces flagged invalid (ignore)")
    p.add_argument("--wider-min-size", type=finite_float, default=0.0,
                   help="WIDER faces smaller than this (px) become ignore regions (0)")
    p.add_argument("--scales", type=_scales, default=(0.5, 1.0, 2.0), help="pyramid scales (0.5,1,2)")
    p.add_argument("--max-side", type=int, help="cap on the longest side of any network input")
    p.add_argument("--input-size", type=parse_size, metavar="HxW",
                   help="fixed network input, as on a device (e.g. 224x224 for the paper's K210): "
                        "each picture resized with its aspect kept, at the top left of a mid-grey "
                        "canvas; with --scales 1 (set it) one network run per picture")
    p.add_argument("--symmetric-pads", action="store_true",
                   help="K210 padding (the paper's Sec. V-D): stride-2 pads made symmetric before "
                        "running; changes the network's numbers, cached apart")
    p.add_argument("--score-threshold", type=unit_float, default=0.01, help="lowest score on the PR curve (0.01)")
    p.add_argument("--nms-iou", type=unit_float, default=0.3, help="NMS IoU threshold (0.3)")
    p.add_argument("--match-iou", type=overlap_float, default=0.5,
                   help="IoU a detection needs to match a face (0.5, the paper's); e.g. 0.3 beside 0.5 tells "
                        "missed faces from badly placed boxes (the cached detections are reused)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="add 95%% bootstrap intervals of AP over pictures, N resamples, seed 0 (0: none)")
    add_job_arguments(p)
    p.add_argument("--json", metavar="OUT", help="write all results (with PR curves) as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="bar chart of AP per format")


def load_dataset(args: argparse.Namespace):
    if args.dataset == "fddb":
        from qsim.facedet.fddb import load_fddb

        folds = args.folds
        if folds not in ("present", "all"):
            try:
                folds = [int(v) for v in folds.split(",")]
            except ValueError:
                raise InputError(f"--folds must be present, all or numbers like 1,2; got {args.folds!r}") from None
        ds = load_fddb(args.data, folds=folds, alpha=args.fddb_alpha, beta=args.fddb_beta,
                       box_rule=args.fddb_box)
    else:
        from qsim.facedet.wider import load_wider

        ds = load_wider(args.data, invalid=args.wider_invalid, min_size=args.wider_min_size)
    if args.limit is not None:
        if args.limit <= 0:
            raise InputError(f"--limit must be positive; got {args.limit}")
        ds = ds.limit(args.limit)
    return ds


def run(args: argparse.Namespace) -> int:
    from qsim.cli.files import check_input_file, check_outputs, write_result_files
    from qsim.facedet.sweep import parse_formats, sweep

    check_outputs(args, files=("--json", "--plot"), dirs=() if args.no_cache else ("--cache",))
    formats = parse_formats(args.formats, mode=args.mode, acc_bits=args.acc_bits, rounding=args.rounding,
                            overflow=args.overflow, calibration=args.calibration,
                            calibration_count=args.calibration_count)
    if args.model is None and any(f.executor not in ("viola_jones", "kmodel") for f in formats):
        raise InputError("a MODEL is needed unless --formats is only vj and kmodel:PATH")
    if args.model is not None:
        check_input_file(args.model, "model file")
    ds = load_dataset(args)
    print(ds.summary(), file=sys.stderr)
    result = sweep(args.model, ds, formats, mode=args.mode, scales=args.scales, max_side=args.max_side,
                   input_hw=args.input_size, symmetric_pads=args.symmetric_pads,
                   score_threshold=args.score_threshold, nms_iou=args.nms_iou, iou_threshold=args.match_iou,
                   **job_options(args), bootstrap=args.bootstrap)
    print(f"{result.model} on {result.dataset}: {result.n_images} images, {result.n_faces} faces "
          f"(AP at IoU >= {args.match_iou:g}, all-point interpolated; pyramid {','.join(f'{s:g}' for s in args.scales)}, "
          f"NMS {args.nms_iou})")
    print()
    print(result.markdown())
    for row in result.rows:
        if row.overflow is not None and row.overflow.total_events:
            first = row.overflow.first_overflow()
            print(f"{row.format}: {row.overflow.total_events} overflow events; first at {first.name} "
                  f"({first.worst_site})")
    write_result_files(result, args)
    return 0
