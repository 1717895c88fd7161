"""``qsim vectors MODEL (--plan P | --format F) (--images DIR | --input X.npy) --out DIR``:
golden test vectors per MAC layer (input codes, parameters, exact accumulators, output codes,
overflow events) and a manifest; ``--layers REGEX`` selects layers, ``--format-out``
``npz`` (default), ``bin`` (raw little-endian) or ``c`` (headers). See `qsim.vectors`.

``--input`` is a preprocessed float NHWC (or HWC) array; ``--images`` takes the first ``--n``
images of DIR (sorted), read and scaled like ``qsim run``. Q-format plans only (TFLite int8
and kmodel vectors: their own tools).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from qsim.cli.run import add_number_arguments, add_size_argument, executor_and_plan, input_size, load_graph, load_input
from qsim.errors import InputError, PlanError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="Keras model (.h5 / .keras)")
    add_number_arguments(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", metavar="DIR", help="folder of JPEG/PNG images (the first --n, sorted)")
    src.add_argument("--input", metavar="X.npy", help="preprocessed float input, NHWC or HWC")
    p.add_argument("--n", type=int, default=1, help="images taken from --images (1)")
    add_size_argument(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the vector set")
    p.add_argument("--layers", metavar="REGEX", help="only MAC layers whose name matches (re.search)")
    p.add_argument("--format-out", default="npz", choices=("npz", "bin", "c"), help="file format (npz)")


def _input(args, graph) -> np.ndarray:
    if args.input:
        try:
            x = np.load(args.input, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"--input {args.input}: cannot read a .npy array: {exc}") from None
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.dtype.kind != "f":
            raise InputError(f"--input {args.input}: expected a float NHWC or HWC array, got "
                             f"shape {x.shape} dtype {x.dtype}")
        return x.astype(np.float32)
    from qsim.images import list_images

    paths = list_images(args.images)[: max(args.n, 1)]
    if not paths:
        raise InputError(f"--images {args.images}: no JPEG/PNG images found")
    size = input_size(graph, args.size)
    xs = [load_input(p, size)[0] for p in paths]
    if len({x.shape for x in xs}) != 1:
        raise InputError(f"--images {args.images}: images of different sizes; pass --size HxW")
    return np.concatenate(xs)


def run(args: argparse.Namespace) -> int:
    from qsim.vectors import write_vectors

    graph = load_graph(args.model)
    executor, plan = executor_and_plan(args, graph)
    if executor != "fixed":
        raise PlanError(f"vectors need a Q-format plan (--format Q6.9 or --plan); got {executor}")
    x = _input(args, graph)
    manifest = write_vectors(graph, plan, x, args.out, layers=args.layers, format_out=args.format_out,
                             model_name=Path(args.model).name)
    print(f"{graph.name}: {len(manifest['layers'])} layers, {len(manifest['files'])} files in {args.out} "
          f"(content hash {manifest['content_hash'][:16]})")
    return 0
