"""``qsim tflite MODEL.tflite``: run an int8/uint8 TFLite model bit-exactly as TFLite's
reference kernels (BUILTIN_REF), with overflow counters and datapath what-ifs.

Input: ``--input X.npy`` (codes in the input tensor's dtype, or float values, which are
quantized with the input tensor's scale / zero point) or ``--image P`` (resized
half-pixel bilinear to the input's H x W, then ``--preprocess``: ``mobilenet`` x/127.5-1,
``unit`` x/255, ``raw`` 0..255, then quantized).

What-ifs (``--acc-bits N --acc-overflow saturate|wrap --multiplier-bits N
--single-rounding --fc-integer``): the model also runs with the reference arithmetic
and the table shows, per operator, how many output values differ.

``--save-tensors OUT.npz`` writes every non-constant tensor of subgraph 0, inputs
included, under ``t{index}`` (TFLite tensor index) in its stored dtype.

JSON (``--json OUT``), schema version 1::

    {"qsim_tflite": 1, "model": .., "options": {..}, "inputs": [..],
     "layers": [{"op": i, "type": .., "tensor": t, "name": .., "shape": [..], "dtype": ..,
                 "counters": {"acc"|"requant"|"act": OverflowCounter.to_dict()},
                 "differ": n | null, "max_abs_diff": d | null}],
     "outputs": [{"tensor": t, "name": .., "dtype": .., "shape": [..], "values": [..]}]}
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from qsim.errors import InputError

SCHEMA_VERSION = 1
SITES = ("acc", "requant", "act")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a .tflite file (int8 per-channel or legacy uint8)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--input", metavar="X.npy", help="input tensor: codes in its dtype, or float values to quantize")
    src.add_argument("--image", metavar="P", help="a picture, resized to the model input")
    p.add_argument("--size", metavar="HxW", help="--image: resize to HxW instead of the input tensor's H x W "
                                                "(the model then runs at that size, like resize_tensor_input)")
    p.add_argument("--preprocess", default="mobilenet", choices=("mobilenet", "unit", "raw"),
                   help="--image to float before quantizing: x/127.5-1 (default), x/255, or 0..255")
    p.add_argument("--save-tensors", metavar="OUT.npz", help="write every non-constant tensor as t{index}")
    p.add_argument("--json", metavar="OUT", help="write the report as JSON")
    p.add_argument("--acc-bits", type=int, default=32, help="accumulator width (default 32, TFLite's int32)")
    p.add_argument("--acc-overflow", default="wrap", choices=("wrap", "saturate"),
                   help="accumulator overflow at --acc-bits (default wrap, as C int32)")
    p.add_argument("--multiplier-bits", type=int, default=32,
                   help="round every requantization multiplier to N signed bits (default 32: unchanged)")
    p.add_argument("--single-rounding", action="store_true",
                   help="TFLITE_SINGLE_ROUNDING arithmetic instead of the pip wheel's double rounding")
    p.add_argument("--fc-integer", action="store_true",
                   help="FULLY_CONNECTED requantizes with an int32 multiplier (optimized kernels) instead of float")


def _options(args):
    from qsim.tflite import TfliteOptions

    return TfliteOptions(single_rounding=args.single_rounding, acc_bits=args.acc_bits,
                         acc_overflow=args.acc_overflow, multiplier_bits=args.multiplier_bits,
                         fc_requant="integer" if args.fc_integer else "float")


def load_input(model, args) -> np.ndarray:
    """The input tensor's codes from --input or --image."""
    from qsim.tflite import quantize_input

    if len(model.inputs) != 1:
        raise InputError(f"{model.path}: {len(model.inputs)} inputs; the CLI runs single-input models")
    t = model.tensors[model.inputs[0]]
    if args.input:
        try:
            x = np.load(args.input, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"--input {args.input}: cannot read a .npy array ({exc})") from None
        if x.dtype.kind == "f" and t.dtype.kind in "iu":
            if not np.all(np.isfinite(x)):
                raise InputError(f"--input {args.input}: NaN or Inf values")
            x = quantize_input(t, x.reshape(t.shape) if x.size == int(np.prod(t.shape)) else x)
        return x
    if args.image:
        from qsim.images import load_image, resize_bilinear

        if len(t.shape) != 4 or t.shape[3] != 3:
            raise InputError(f"--image needs an NHWC 3-channel input; tensor {t.index} '{t.name}' is {list(t.shape)}")
        hw = (t.shape[1], t.shape[2])
        if args.size:
            from qsim.cli.run import parse_size

            hw = parse_size(args.size)
        img = resize_bilinear(load_image(args.image), hw).astype(np.float32)
        f = {"mobilenet": img / 127.5 - 1.0, "unit": img / 255.0, "raw": img}[args.preprocess]
        return quantize_input(t, f[None].astype(np.float32))
    raise InputError("give --input X.npy or --image P")


def input_shapes_for(model, x) -> dict | None:
    """``prepare``'s input_shapes for input `x`: None at the stored shape, {index: shape} when
    `x` differs only in dimensions that are -1 in the input's shape_signature."""
    t_in = model.tensors[model.inputs[0]]
    if np.ndim(x) != len(t_in.shape) or tuple(np.shape(x)) == tuple(t_in.shape):
        return None
    sig = t_in.signature or t_in.shape
    if any(a != b and s_ != -1 for a, b, s_ in zip(np.shape(x), t_in.shape, sig)):
        raise InputError(f"{model.path}: input tensor {t_in.index} '{t_in.name}' has shape {list(t_in.shape)}, "
                         f"got {list(np.shape(x))} (only dimensions that are -1 in its shape_signature "
                         f"{list(sig)} may change)")
    return {t_in.index: tuple(np.shape(x))}  # a dynamic dimension: infer every shape


def run(args) -> int:
    from qsim.tflite import prepare, read_tflite, whatif_report
    from qsim.tflite.executor import op_label

    model = read_tflite(args.model)
    options = _options(args)
    x = load_input(model, args)
    shapes = input_shapes_for(model, x)
    if options.is_reference:
        prog = prepare(model, options, input_shapes=shapes)
        result = prog.run(x)
        layers = None
    else:
        rep = whatif_report(model, x, options, input_shapes=shapes)
        result, layers = rep["whatif"], {(d["op"], d["tensor"]): d for d in rep["layers"]}
    if shapes:  # report the inferred shapes
        model = prepare(model, input_shapes=shapes).model
    rows = []
    for op in model.operators:
        label = op_label(op, model)
        for i in op.outputs:
            t = model.tensors[i]
            cs = {s: result.counters[f"{label}/{s}"] for s in SITES if f"{label}/{s}" in result.counters}
            d = layers.get((op.index, i)) if layers else None
            rows.append({"op": op.index, "type": op.name, "tensor": i, "name": t.name, "shape": list(t.shape),
                         "dtype": t.type_name, "counters": {s: c.to_dict() for s, c in cs.items()},
                         "differ": d["differ"] if d else None, "max_abs_diff": d["max_abs_diff"] if d else None,
                         "elements": int(np.prod(t.shape))})
    _print_table(model, options, rows)
    outputs = []
    for i in model.outputs:
        v = result.tensors[i]
        outputs.append({"tensor": i, "name": model.tensors[i].name, "dtype": model.tensors[i].type_name,
                        "shape": list(v.shape), "values": v.reshape(-1).tolist()[:1000]})
        print(f"output t{i} '{model.tensors[i].name}' {model.tensors[i].type_name} {list(v.shape)}: "
              f"{np.array2string(v.reshape(-1)[:16], separator=' ')}{' ...' if v.size > 16 else ''}")
    if args.save_tensors:
        arrays = {f"t{i}": v for i, v in sorted(result.tensors.items()) if model.tensors[i].data is None}
        np.savez(args.save_tensors, **arrays)
        print(f"wrote {len(arrays)} tensors to {args.save_tensors}")
    if args.json:
        report = {"qsim_tflite": SCHEMA_VERSION, "model": str(args.model), "options": options.to_dict(),
                  "inputs": [{"tensor": i, "name": model.tensors[i].name, "shape": list(model.tensors[i].shape),
                              "dtype": model.tensors[i].type_name} for i in model.inputs],
                  "layers": rows, "outputs": outputs}
        Path(args.json).write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")
    return 0


def _print_table(model, options, rows) -> None:
    what = "reference (BUILTIN_REF arithmetic)" if options.is_reference else \
        "what-if " + ", ".join(f"{k}={v}" for k, v in options.to_dict().items() if v != getattr(type(options)(), k))
    print(f"{model.path}: {len(model.operators)} ops, {len(model.tensors)} tensors; {what}")
    head = f"{'op':>3} {'type':<24} {'out':>4} {'shape':<16} {'acc ovf':>9} {'requant':>9} {'act clamp':>9}"
    if not options.is_reference:
        head += f" {'differ':>13}"
    print(head)
    for r in rows:
        c = r["counters"]
        cells = [f"{c[s]['events']}" if s in c else "-" for s in SITES]
        line = (f"{r['op']:>3} {r['type']:<24} {'t' + str(r['tensor']):>4} {str(r['shape']):<16} "
                f"{cells[0]:>9} {cells[1]:>9} {cells[2]:>9}")
        if r["differ"] is not None:
            line += f" {r['differ']:>6}/{r['elements']:<6}"
        print(line)

