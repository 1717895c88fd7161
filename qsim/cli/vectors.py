"""``qsim vectors MODEL (--images DIR | --input X.npy) --out DIR``: golden test vectors per
MAC layer (input codes, parameters, exact accumulators, output codes, overflow events) and a
manifest; ``--layers REGEX`` selects layers, ``--format-out`` ``npz`` (default), ``bin`` (raw
little-endian) or ``c`` (headers). One writer, three backends, told apart by the file:

* Keras ``.h5`` / ``.keras`` with ``--plan P | --format F`` (a Q-format plan): `qsim.vectors`.
  ``--input`` is a preprocessed float NHWC (or HWC) array; ``--images`` takes the first
  ``--n`` images of DIR (sorted), read and scaled like ``qsim run``. ``--format k210
  --calibration ...``: the KPU layers of qsim's own K210 quantization
  (`qsim.vectors.k210.write_graph_vectors`), same inputs.
* ``.tflite`` (int8 / uint8): `qsim.vectors.tflite`, per CONV_2D / DEPTHWISE_CONV_2D /
  FULLY_CONNECTED. ``--input``: the input tensor's codes, or float values (quantized with its
  scale and zero point); ``--images``: the first image of DIR resized to the input's H x W,
  ``--preprocess`` (as ``qsim tflite``), quantized.
* ``.kmodel`` (v4): `qsim.vectors.k210`, per KPU layer, CHW. ``--input``: the tensor as the
  model's input memory holds it (uint8 NCHW for a KPU input); ``--images``: the first image
  of DIR resized to the input (uint8 RGB planes; float inputs ``(p - 127) / 128``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from qsim.cli.run import add_number_arguments, add_size_argument, executor_and_plan, input_size, load_graph, load_input
from qsim.errors import InputError, PlanError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="Keras model (.h5 / .keras, with --format or --plan), .tflite or .kmodel (v4)")
    add_number_arguments(p).required = False  # a .tflite or .kmodel carries its own numbers
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", metavar="DIR", help="folder of JPEG/PNG images (the first --n, sorted)")
    src.add_argument("--input", metavar="X.npy", help="preprocessed float input, NHWC or HWC")
    p.add_argument("--n", type=int, default=1, help="images taken from --images (1)")
    add_size_argument(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the vector set")
    p.add_argument("--layers", metavar="REGEX", help="only MAC layers whose name matches (re.search)")
    p.add_argument("--format-out", default="npz", choices=("npz", "bin", "c"), help="file format (npz)")
    p.add_argument("--preprocess", default="mobilenet", choices=("mobilenet", "unit", "raw"),
                   help=".tflite --images: x/127.5-1 (default), x/255 or 0..255 before quantizing")


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


def _first_image(args) -> str:
    from qsim.images import list_images

    paths = list_images(args.images)
    if not paths:
        raise InputError(f"--images {args.images}: no JPEG/PNG images found")
    if args.n != 1:
        raise InputError(f"--n {args.n}: a .tflite / .kmodel vector set is taken on one image (--n 1)")
    return str(paths[0])


def _tflite(args) -> dict:
    from qsim.cli.tflite import input_shapes_for, load_input
    from qsim.tflite import read_tflite
    from qsim.vectors.tflite import write_vectors

    model = read_tflite(args.model)
    ns = argparse.Namespace(input=args.input, image=_first_image(args) if args.images else None,
                            size=args.size, preprocess=args.preprocess)
    x = load_input(model, ns)
    return write_vectors(model, x, args.out, layers=args.layers, format_out=args.format_out,
                         input_shapes=input_shapes_for(model, x), model_name=Path(args.model).name)


def _kmodel(args) -> dict:
    from qsim.cli.files import read_npy
    from qsim.cli.k210 import _image_tensor
    from qsim.k210.kmodel import read_kmodel
    from qsim.k210.kmodel_v3 import kmodel_version
    from qsim.vectors.k210 import write_vectors

    if kmodel_version(args.model) == 3:
        raise InputError(f"{args.model}: a kmodel v3; vectors are written for kmodel v4 files")
    model = read_kmodel(args.model)
    if args.input:
        x = read_npy(args.input, "--input")
    else:
        if len(model.inputs) != 1:
            raise InputError(f"{args.model} has {len(model.inputs)} inputs; --images feeds one")
        x = _image_tensor(_first_image(args), model.inputs[0], model.input_shapes[0], "127,128")
    return write_vectors(model, x, args.out, layers=args.layers, format_out=args.format_out,
                         model_name=Path(args.model).name)


def _keras(args) -> dict:
    from qsim.vectors import write_vectors

    graph = load_graph(args.model)
    executor, plan = executor_and_plan(args, graph)
    if executor == "k210":
        from qsim.cli.run import calibration_input
        from qsim.vectors.k210 import write_graph_vectors

        x = _input(args, graph)
        return write_graph_vectors(graph, calibration_input(args, graph, tuple(x.shape[1:3])), x, args.out,
                                   layers=args.layers, format_out=args.format_out, model_name=Path(args.model).name)
    if executor != "fixed":
        raise PlanError(f"vectors need a Q-format plan (--format Q6.9 or --plan) or --format k210; got {executor}")
    x = _input(args, graph)
    return write_vectors(graph, plan, x, args.out, layers=args.layers, format_out=args.format_out,
                         model_name=Path(args.model).name)


BACKENDS = {".tflite": _tflite, ".kmodel": _kmodel}


def run(args: argparse.Namespace) -> int:
    from qsim.cli.files import quantized_model_suffix

    suffix = quantized_model_suffix(args)
    manifest = _keras(args) if suffix is None else BACKENDS[suffix](args)
    print(f"{manifest['model']}: {len(manifest['layers'])} layers, {len(manifest['files'])} files in {args.out} "
          f"(content hash {manifest['content_hash'][:16]})")
    return 0
