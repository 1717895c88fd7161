"""``qsim demo``: the bundled face detector at FP32, a Q format (and K210) on a bundled image.

Runs ``qsim/assets/a98_alpha1.0.h5`` (MobileNetV2 A98, alpha 1.0, trained by
``reference/train.py``; ``--model`` runs another) on scikit-image's ``astronaut()`` picture
(NASA, public domain; ``--image`` for your own) through the image pyramid (0.5x, 1x, 2x with
the longest network input capped at ``--max-side``), NMS at IoU 0.3, once per number format:

* ``fp32``: the float executor;
* ``--format`` (default ``q9``: the paper's Q6.9, 16-bit words): the bit-accurate fixed-point
  executor, every weight, activation and accumulator an integer (``Plan.uniform``, 32-bit
  accumulators, half_up rounding, saturation);
* ``k210``: the KPU simulator, when `qsim.executors.registry` has it.

It writes ``<out>/demo_<format>.png`` (detections in green with their score), prints the
detections per format, how many FP32 faces each format finds again (IoU >= 0.5), and the
per-layer overflow summary of the integer run; ``<out>/demo.json`` holds the same.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from qsim.errors import InputError, QsimError

BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "assets" / "a98_alpha1.0.h5"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo-out", help="folder for the PNGs and demo.json (demo-out)")
    p.add_argument("--image", help="JPEG/PNG to run on (default: skimage.data.astronaut(), public domain)")
    p.add_argument("--model", help=f"face-detector model (default: the bundled {BUNDLED_MODEL.name})")
    p.add_argument("--format", default="q9", help="fixed-point format of the integer run (q9 = Q6.9)")
    p.add_argument("--score-threshold", type=float, default=0.5, help="detection score threshold (0.5)")
    p.add_argument("--max-side", type=int, default=640,
                   help="cap on the longest side of a pyramid level (640; keeps the demo fast)")
    p.add_argument("--no-k210", action="store_true", help="skip the K210 run even if available")


def _image(path: str | None):
    from qsim.images import load_image

    if path:
        return load_image(path), Path(path).name
    try:
        from skimage import data
    except ImportError:
        raise InputError("the demo image comes from scikit-image: pip install scikit-image, or pass --image") from None
    return np.ascontiguousarray(data.astronaut()[..., :3]), "skimage.data.astronaut()"


def _match_count(ref_boxes, boxes) -> int:
    """How many reference boxes have a partner (IoU >= 0.5), matched greedily."""
    from qsim.facedet.metrics import match_image

    if len(ref_boxes) == 0 or len(boxes) == 0:
        return 0
    is_tp, _ = match_image(boxes, np.linspace(1, 0, len(boxes)), ref_boxes)
    return int(is_tp.sum())


def run(args: argparse.Namespace) -> int:
    import qsim
    from qsim.analysis.overflow import OverflowReport
    from qsim.analysis.report import fmt_num, fmt_pct, markdown_table, write_json
    from qsim.facedet.detector import detect
    from qsim.facedet.draw import draw_boxes, save_png
    from qsim.facedet.sweep import infer_stride
    from qsim.plan import Plan
    from qsim.runtime import BACKENDS, prepare

    model = Path(args.model) if args.model else BUNDLED_MODEL
    if model.is_dir():
        raise InputError(f"model file {model} is a directory, expected a file")
    if not model.is_file():
        hint = "" if args.model else " (the bundled model is produced by reference/train.py; pass --model)"
        raise InputError(f"model file {model} not found{hint}")
    from qsim.cli.files import check_output_dir

    out_dir = check_output_dir(args.out, "--out")
    image, image_name = _image(args.image)
    graph = qsim.load_model(model)
    stride = infer_stride(graph)
    q_plan = Plan.uniform(args.format)
    runs = [("fp32", "float", None), (args.format.lower(), "fixed", q_plan)]
    if "k210" in BACKENDS and not args.no_k210:
        runs.append(("k210", "k210", None))

    print(f"{model.name} (stride {stride}) on {image_name} {image.shape[1]}x{image.shape[0]}; "
          f"pyramid 0.5/1/2 (longest side <= {args.max_side}), score >= {args.score_threshold}, NMS 0.3"
          + ("" if args.no_k210 else "; k210 calibrated on the picture itself at 224x224"))

    results = {}
    reports = {}
    for label, executor, plan in runs:
        report = OverflowReport(graph) if executor != "float" else None
        options = {}
        if executor == "k210":  # explicit calibration: the demo picture itself at 224x224
            from qsim.images import mobilenet_preprocess, resize_bilinear

            options["calibration"] = mobilenet_preprocess(resize_bilinear(image, (224, 224)))[None].astype(np.float32)
        program = prepare(graph, plan, executor=executor, **options)

        def run_fn(x, program=program, report=report):
            trace = program.run(x, keep_values=False)
            if report is not None and trace.counters:
                report.update(trace)
            return trace.output(0)

        t0 = time.perf_counter()
        try:
            det = detect(image, run_fn, stride=stride, score_threshold=args.score_threshold,
                         max_side=args.max_side)
        except QsimError as exc:
            if executor != "k210":
                raise
            # the KPU cannot take every graph (memory, ops): say why and go on with the others
            print(f"\n## k210: not run: {exc}")
            reports.pop(label, None)
            continue
        seconds = time.perf_counter() - t0
        png = save_png(draw_boxes(image, det_boxes=det.boxes, det_scores=det.scores), out_dir / f"demo_{label}.png")
        results[label] = {"executor": executor, "plan": None if plan is None else plan.describe(),
                          "seconds": round(seconds, 2), "png": str(png),
                          "detections": [{"box": [round(float(v), 1) for v in b], "score": round(float(s), 4)}
                                         for b, s in zip(det.boxes, det.scores)],
                          "boxes": det.boxes}
        if report is not None:
            reports[label] = report

    ref = results["fp32"]["boxes"]
    for label, res in results.items():
        desc = res["plan"] or res["executor"]
        found = "" if label == "fp32" else f"; finds {_match_count(ref, res['boxes'])}/{len(ref)} of the FP32 faces"
        n = len(res["detections"])
        print(f"\n## {label} ({desc}): {n} face(s) in {res['seconds']:.1f} s{found} -> {res['png']}")
        for d in res["detections"][:10]:
            x1, y1, x2, y2 = d["box"]
            print(f"  score {d['score']:.3f}  box ({x1:.0f}, {y1:.0f}) - ({x2:.0f}, {y2:.0f})")
    for label, report in reports.items():
        print(f"\n## overflow, {label} ({report.n_images} pyramid runs): {report.total_events} event(s)")
        counted = [layer for layer in report.layers.values() if layer.sites]
        if not counted:
            continue
        hit = [layer for layer in counted if layer.events]
        if hit:
            rows = [[layer.name, layer.op, str(layer.events), layer.worst_site, fmt_pct(layer.worst_rate),
                     fmt_num(layer.headroom_bits)] for layer in hit]
            print(markdown_table(["layer", "op", "overflows", "worst site", "rate", "headroom bits"], rows,
                                 align="llrlrr"))
        tight = sorted(counted, key=lambda layer: layer.headroom_bits)[:5]
        names = ", ".join(f"{layer.name} {layer.headroom_bits:.2f}" for layer in tight)
        print(f"{'no overflow anywhere; ' if not hit else ''}least headroom (bits): {names}")
        results[label]["overflow"] = report.to_dict()
    for res in results.values():
        res.pop("boxes")
    write_json({"qsim_demo": 1, "model": str(model), "image": image_name, "stride": stride,
                "score_threshold": args.score_threshold, "max_side": args.max_side, "runs": results},
               out_dir / "demo.json")
    print(f"\nwrote {out_dir}/demo_*.png and {out_dir}/demo.json", file=sys.stderr)
    return 0
