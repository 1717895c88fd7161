"""``qsim run MODEL IMAGE --format Q6.9 | --plan plan.json``: bit-accurate inference of one image.

Prints the outputs (shape and a few statistics), the top decoded detections when the model
ends in the 125-channel Tiny-Face head, and the per-layer table: number format, range of
values seen, overflow events (count, worst site and its rate) and headroom bits.

Number formats (``--format``): any `QFormat.parse` spelling (``Q6.9``, the paper's ``q9``,
``ap_fixed<16,7>``) builds ``Plan.uniform(fmt, acc_bits, rounding, overflow, mode)`` for the
fixed-point backend (``--mode weights``: the weights-only backend); ``fp16`` runs the fp16
backend, ``k210`` the KPU simulator (it needs ``--calibration``: a folder of images, a range
table or a preprocessed ``.npy`` batch), ``fp32``/``float`` the float backend. ``--plan``
reads a plan JSON (`qsim.plan`); its mode picks the backend.

Input: JPEG/PNG images are read as RGB, resized (half-pixel bilinear) to the model's input
size when the model fixes it (``--size HxW`` overrides; fully convolutional models take the
image as is) and scaled by ``--preprocess`` (default ``mobilenet``: ``x / 127.5 - 1``, what
the MobileNetV2 backbone expects; `qsim.cli.inputs`). ``--input X.npy`` instead feeds an
array, batch first, of any rank the model takes (features, spectrograms, preprocessed
images), checked against the model's input; detections are decoded for images only.

JSON (``--json OUT``), schema version 1::

    {
      "qsim_run": 1,
      "model": "m.h5", "image": "img.jpg" | null,
      "input": "x.npy" | null,           # --input: an array instead of the image
      "preprocess": "mobilenet" | null,  # --preprocess of the image (null with --input)
      "image_hw": [H0, W0] | null,       # size of the image file
      "input_shape": [1, H, W, 3],       # network input after resizing (--input: its shape)
      "executor": "fixed",               # float | fixed | weights | fp16 | k210
      "plan": {...} | null,              # the plan's own JSON (qsim.plan schema)
      "outputs": [{"name": .., "shape": [..], "min": .., "max": .., "mean": .., "std": ..}],
      "detections": [{"box": [x1, y1, x2, y2], "score": s}] | null,   # image-file pixels
      "non_finite_cells": N | null,      # head cell-templates with NaN/Inf: no detection
      "overflow": {"n_images": 1, "total_events": N, "layers": [...]}   # OverflowReport
    }

The helpers here (`add_number_arguments`, `executor_and_plan`, `calibration_input`,
`prepare_program`, `load_graph`, `input_size`, `load_input`) are shared by ``qsim compare``,
``qsim profile`` and ``qsim demo``.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from qsim.cli.values import overflow_name, rounding_name
from qsim.errors import InputError, PlanError, QsimError

SCHEMA_VERSION = 1
FLOAT_NAMES = ("fp32", "float", "float32")
ROUNDINGS = ("floor", "toward_zero", "half_up", "half_even", "half_away")
HEAD_CHANNELS = 125


# --- arguments shared by run / compare --------------------------------------------------

def add_number_arguments(p: argparse.ArgumentParser, formats_help: str = ""):
    """``--format`` | ``--plan`` and the uniform-plan options; returns the --format|--plan group."""
    grp = p.add_mutually_exclusive_group(required=True)
    grp.add_argument("--format", metavar="FMT",
                     help="number format of a uniform plan: Q6.9, q9 (paper: Q6.9), ap_fixed<16,7>, "
                          "or fp16, k210, fp32" + formats_help)
    grp.add_argument("--plan", metavar="PLAN.json", help="a plan file (qsim profile --plan-out writes one)")
    p.add_argument("--acc-bits", type=int, default=32, help="accumulator width of a uniform plan (32)")
    p.add_argument("--rounding", default="half_up", type=rounding_name, metavar="MODE",
                   help=f"rounding mode: {', '.join(ROUNDINGS)} or a foreign name such as AP_RND_CONV (half_up)")
    p.add_argument("--overflow", default="saturate", type=overflow_name, metavar="MODE",
                   help="overflow mode: saturate, wrap (or AP_SAT, AP_WRAP) (saturate)")
    p.add_argument("--mode", default="full", choices=("full", "weights"),
                   help="full: integer everything; weights: quantized weights, float activations "
                        "(the paper's Table II)")
    add_calibration_arguments(p)
    return grp


def add_calibration_arguments(p: argparse.ArgumentParser) -> None:
    """``--calibration`` / ``--calibration-count``: the K210 quantizer's explicit calibration."""
    p.add_argument("--calibration", metavar="DIR|RANGES.json|X.npy",
                   help="k210 only (required there): a folder of images (--calibration-count of them, "
                        "a fixed sample), a range table (qsim.k210.executor.save_ranges) or a "
                        "preprocessed NHWC float .npy batch")
    p.add_argument("--calibration-count", type=int, default=8, metavar="N",
                   help="images taken from a --calibration folder (8)")


def add_job_arguments(p: argparse.ArgumentParser, cache: bool = True) -> None:
    """Where the work runs (sweep, eval, search, compare, profile: `qsim.analysis.tasks`) and,
    with ``cache``, where results are stored."""
    p.add_argument("--workers", type=int, default=1, help="processes (1)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT|local:N",
                   help="run on a Dask cluster (an existing scheduler, or a LocalCluster of N workers started here)")
    if cache:
        p.add_argument("--cache", metavar="DIR", help="cache folder (default $QSIM_CACHE or ~/.cache/qsim)")
        p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")


def job_options(args: argparse.Namespace) -> dict:
    """The `add_job_arguments` values as keyword arguments of sweep / evaluate."""
    return dict(workers=args.workers, scheduler=args.scheduler, cache_dir=args.cache, use_cache=not args.no_cache)


def calibration_input(args: argparse.Namespace, graph: Any, size: tuple[int, int] | None = None) -> Any:
    """What ``--calibration`` names, as the k210 backend's ``calibration=`` (`qsim.k210.calibration`)."""
    from qsim.k210.calibration import calibration_hw, load_calibration

    path = getattr(args, "calibration", None)
    if not path:
        raise PlanError("k210 needs --calibration DIR|RANGES.json|X.npy (the KPU quantizer's ranges come "
                        "from explicit calibration data, never from files found on the machine)")
    return load_calibration(path, int(getattr(args, "calibration_count", 8)), calibration_hw(graph, size))


def prepare_program(graph: Any, executor: str, plan: Any, args: argparse.Namespace | None = None,
                    size: tuple[int, int] | None = None) -> Any:
    """The `qsim.runtime` program for (executor, plan) of `executor_and_plan`."""
    from qsim.runtime import prepare

    if executor == "k210":
        return prepare(graph, executor="k210", calibration=calibration_input(args, graph, size))
    return prepare(graph, plan, executor=executor)


def add_size_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", metavar="HxW", type=parse_size,
                   help="resize images to HxW (default: the model's input size, or as is)")


def parse_size(text: str) -> tuple[int, int]:
    """``"500x400"`` -> (500, 400); a single number means a square."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        dims = [int(v) for v in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 500x500; got {text!r}") from None
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) <= 0:
        raise argparse.ArgumentTypeError(f"size must be HxW with positive H, W; got {text!r}")
    return dims[0], dims[1]


def executor_and_plan(args: argparse.Namespace, graph: Any) -> tuple[str, Any]:
    """(executor name, validated plan or None) from ``--format``/``--plan`` and friends."""
    from qsim.fixed.format import QFormat
    from qsim.plan import Plan
    from qsim.runtime import backend_for

    if getattr(args, "plan", None):
        plan = Plan.load(args.plan).validate(graph)
        return backend_for(plan), plan
    fmt = args.format.strip()
    low = fmt.lower()
    if low in FLOAT_NAMES:
        return "float", None
    if low == "fp16":
        return "fp16", Plan.uniform("Q6.9", mode="fp16")
    if low == "k210":
        return "k210", None
    try:
        QFormat.parse(fmt)
    except QsimError as exc:
        raise PlanError(f"--format {fmt!r}: {exc}; or use fp16, k210, fp32") from None
    plan = Plan.uniform(fmt, acc_bits=args.acc_bits, rounding=args.rounding,
                        overflow=args.overflow, mode=args.mode)
    return backend_for(plan), plan.validate(graph)


def describe(executor: str, plan: Any) -> str:
    """One line naming what runs, e.g. ``fixed: full w=Q6.9 ...`` or ``fp16: IEEE half ...``."""
    if plan is None:
        return executor
    if plan.mode.value == "fp16":
        acts = "weights and activations" if plan.fp16_activations else "weights"
        return f"fp16: IEEE binary16 {acts}"
    return f"{executor}: {plan.describe()}"


# --- model and images -------------------------------------------------------------------

def load_graph(path: str | Path) -> Any:
    """The model file as a `Graph` (any importer error is a `QsimError` naming the file)."""
    import qsim
    from qsim.cli.files import check_input_file

    return qsim.load_model(check_input_file(path, "model file"))


def input_size(graph: Any, size: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """The (h, w) images are resized to: ``size``, else the model's fixed size, else None."""
    from qsim.cli.inputs import image_model_check

    inputs = graph.inputs
    if len(inputs) != 1:
        raise InputError(f"model {graph.name!r} has {len(inputs)} inputs; qsim feeds one image")
    image_model_check(graph)
    shape = tuple(inputs[0].attrs.get("shape") or (None, None, 3))
    channels = shape[-1]
    if channels not in (None, 3):
        raise InputError(
            f"model {graph.name!r} input {inputs[0].name!r} takes {channels}-channel images "
            f"(shape {shape}); images are read as RGB (3 channels)"
        )
    if size is not None:
        return size
    h, w = shape[0], shape[1]
    return (int(h), int(w)) if h and w else None


def load_input(path: str | Path, size: tuple[int, int] | None,
               preprocess: Any = None) -> tuple[np.ndarray, tuple[int, int]]:
    """One image as a ``(1, H, W, 3)`` float32 network input, and the file's (H0, W0).

    ``preprocess``: a `qsim.cli.inputs.Preprocess` (None: MobileNet's ``x / 127.5 - 1``).
    """
    from qsim.images import load_image, mobilenet_preprocess, resize_bilinear

    img = load_image(path)
    hw = (int(img.shape[0]), int(img.shape[1]))
    if size is not None and tuple(size) != hw:
        img = resize_bilinear(img, size)
    return (mobilenet_preprocess(img) if preprocess is None else preprocess(img))[None], hw


def progress_bar(total: int):
    """A wrapper showing a tqdm bar on stderr when it is a terminal (silent otherwise)."""

    def wrap(it):
        if not sys.stderr.isatty():
            return it
        try:
            from tqdm import tqdm
        except ImportError:
            return it
        return tqdm(it, total=total, unit="img", file=sys.stderr)

    return wrap


# --- output summaries -------------------------------------------------------------------

def output_summaries(trace: Any) -> list[dict[str, Any]]:
    rows = []
    for name, value in trace.outputs.items():
        v = np.asarray(value, dtype=np.float64)
        rows.append({"name": name, "shape": list(v.shape), "min": float(v.min()), "max": float(v.max()),
                     "mean": float(v.mean()), "std": float(v.std())})
    return rows


def detections(out: np.ndarray, input_hw: tuple[int, int], image_hw: tuple[int, int],
               top: int = 10, score_threshold: float = 0.5, nms_iou: float = 0.3,
               counts: dict | None = None) -> list[dict] | None:
    """Top decoded faces of a 125-channel Tiny-Face head output, in image-file pixels.

    None when the output is not such a head or `qsim.facedet` cannot decode it. `counts`
    receives ``"non_finite"``, the cell-templates holding NaN/Inf (no detection; `decode`).
    """
    arr = np.asarray(out)
    if arr.ndim != 4 or arr.shape[-1] != HEAD_CHANNELS:
        return None
    try:
        from qsim.facedet.coding import decode
    except ImportError:
        return None
    # stride: input pixels per output cell, a power of two for MobileNetV2 cuts (16, 32)
    stride = 2.0 ** round(math.log2(input_hw[0] / arr.shape[1]))
    boxes, scores = decode(arr[0], stride=stride, score_threshold=score_threshold, counts=counts)
    try:
        from qsim.facedet.nms import nms
        keep = nms(boxes, scores, nms_iou)
        boxes, scores = boxes[keep], scores[keep]
    except ImportError:
        pass
    sy, sx = image_hw[0] / input_hw[0], image_hw[1] / input_hw[1]
    scale = np.array([sx, sy, sx, sy])
    return [{"box": [round(float(c), 1) for c in box * scale], "score": float(s)}
            for box, s in zip(boxes[:top], scores[:top])]


# --- the verb -----------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    from qsim.cli.inputs import add_input_arguments

    p.add_argument("model", help="Keras model (.h5 / .keras)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("image", nargs="?", help="JPEG/PNG image (or --input X.npy)")
    add_input_arguments(p, source)
    add_number_arguments(p)
    add_size_argument(p)
    p.add_argument("--top", type=int, default=10, help="detections to print for a face head (10)")
    p.add_argument("--all-layers", action="store_true",
                   help="list every node (default: nodes with overflow counters)")
    p.add_argument("--json", metavar="OUT", help="write the full result as JSON (schema in the docs)")


def run(args: argparse.Namespace) -> int:
    from qsim.analysis.overflow import overflow_report
    from qsim.analysis.report import fmt_num, markdown_table
    from qsim.cli.files import check_input_file, check_outputs, write_json_file
    from qsim.cli.inputs import load_array

    check_outputs(args, files=("--json",))
    graph = load_graph(args.model)
    executor, plan = executor_and_plan(args, graph)
    if args.input:
        if args.size:
            raise InputError("--size resizes images; an --input array is fed as it is")
        x, image_hw = load_array(args.input, graph), None
    else:
        check_input_file(args.image, "image file")
        size = input_size(graph, args.size)
        x, image_hw = load_input(args.image, size, args.preprocess)
    trace = prepare_program(graph, executor, plan, args, args.size).run(x)
    report = overflow_report(trace, graph)
    outputs = output_summaries(trace)
    decode_counts: dict = {}
    dets = None if image_hw is None else detections(trace.output(0), x.shape[1:3], image_hw, top=args.top,
                                                    counts=decode_counts)

    out = sys.stdout
    source = f"{args.input} (array)" if image_hw is None else \
        f"{args.image} ({image_hw[0]}x{image_hw[1]}, preprocess {args.preprocess.name})"
    print(f"{graph.name}: {source} -> input {list(x.shape)}, executor {describe(executor, plan)}", file=out)
    print("", file=out)
    print(markdown_table(["output", "shape", "min", "max", "mean", "std"],
                         [[o["name"], "x".join(map(str, o["shape"])), o["min"], o["max"], o["mean"], o["std"]]
                          for o in outputs]), file=out)
    if dets is not None:
        print("", file=out)
        if dets:
            print(markdown_table(["#", "x1", "y1", "x2", "y2", "score"],
                                 [[str(i + 1), *map(fmt_num, d["box"]), d["score"]] for i, d in enumerate(dets)]),
                  file=out)
        else:
            print("no face above score 0.5", file=out)
        if decode_counts.get("non_finite"):
            print(f"{decode_counts['non_finite']} cell-template(s) of the head output hold NaN/Inf "
                  "(overflow upstream): treated as no detection", file=out)
    print("", file=out)
    print(report.render(only_counted=bool(trace.counters) and not args.all_layers), file=out)
    first = report.first_overflow()
    print("", file=out)
    print(f"overflow events: {report.total_events}"
          + (f" (first at {first.name}, site {first.worst_site})" if first else ""), file=out)
    if args.json:
        write_json_file({
            "qsim_run": SCHEMA_VERSION, "model": str(args.model),
            "image": None if args.image is None else str(args.image),
            "input": None if args.input is None else str(args.input),
            "preprocess": None if args.input else args.preprocess.name,
            "image_hw": None if image_hw is None else list(image_hw), "input_shape": list(x.shape),
            "executor": executor,
            "plan": None if plan is None else plan.to_dict(), "outputs": outputs,
            "detections": dets, "non_finite_cells": decode_counts.get("non_finite", 0) if dets is not None else None,
            "overflow": report.to_dict(),
        }, args.json)
        print(f"wrote {args.json}", file=out)
    return 0
