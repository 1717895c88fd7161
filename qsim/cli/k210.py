"""``qsim k210 FILE``: the Kendryte K210 verb.

* ``FILE.kmodel`` (v4, or v3 = nncase 0.1 / MaixPy, told apart by the first word): run it bit-exactly (``--input RAW.npy`` feeds the tensor exactly as the
  model's input memory holds it, e.g. uint8 NCHW; ``--image IMG`` resizes a picture to the
  model's input (half-pixel bilinear), as uint8 RGB planes, or for a float32 input
  ``(p - mean) / std`` with ``--float-norm MEAN,STD``). Prints per-layer shapes and KPU RAM
  use, and the outputs (raw bytes and values); ``--save-outputs OUT.npz`` writes each output
  as an array in its output memory's own dtype (``output0``, ``output1``, ...). A v3 model
  runs through `qsim.k210.kmodel_v3_exec` with the same flags and report (its "memory"
  strings name main memory / KPU RAM ranges; see docs/k210-v3.md).
* a Keras model (``.h5`` / ``.keras``): quantize it for the KPU the nncase 1.x way, print the
  memory plan (2 MiB KPU RAM, first layer that does not fit) and the latency/FPS estimate,
  and with ``--image`` run the KPU simulation.

JSON (``--json OUT``), schema version 1::

    {"qsim_k210": 1, "kind": "kmodel", "kmodel_version": 3 | 4, "file": .., "switches": {..},
     "inputs": [{"memory": .., "shape": [..]}],
     "layers": [{"index": i, "op": .., "in_shape": [..], "out_shape": [..], "output": ..,
                 "kpu_ram_in": B | null, "kpu_ram_out": B | null}],
     "kpu_ram_high_water": B,
     "outputs": [{"memory": .., "dtype": .., "shape": [..], "min": .., "max": .., "mean": ..,
                  "head_bytes_hex": ..}]}
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from qsim.errors import InputError

SCHEMA_VERSION = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a .kmodel (v3 or v4) file, or a Keras .h5/.keras model")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", help="a picture to run (resized to the model input)")
    src.add_argument("--input", metavar="RAW.npy", help="the input tensor exactly as the model's input memory holds it")
    p.add_argument("--json", metavar="OUT", help="write the report as JSON")
    p.add_argument("--save-outputs", metavar="OUT.npz", help="write each output in its memory's dtype")
    p.add_argument("--float-norm", default="127,128", metavar="MEAN,STD",
                   help="for a float32 model input fed from --image: (p - MEAN) / STD (default 127,128)")
    p.add_argument("--segment-compare", default="strict", choices=("strict", "inclusive"))
    p.add_argument("--act-rounding", default="nncase", choices=("nncase", "half_even", "half_up"),
                   help="KPU activation ties: nncase = the v4 runtime's ties-to-even (default); "
                        "half_up = nncase 0.1's emulator, which made the public v3 models")
    p.add_argument("--mean-rounding", default="floor", choices=("floor", "half_up"))
    p.add_argument("--alu-overflow", default="exact", choices=("exact", "wrap"))
    # Keras models
    p.add_argument("--size", metavar="HxW", help="Keras model: input size (default: the model's, else 224x224)")
    p.add_argument("--calib", metavar="DIR", help="Keras model: calibration images (required for a Keras model)")
    p.add_argument("--calib-count", type=int, default=8, help="Keras model: number of calibration images")
    p.add_argument("--keep-pads", action="store_true",
                   help="Keras model: keep TensorFlow's asymmetric stride-2 pads (default: the K210's symmetric pads)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")


def _switches(args):
    from qsim.k210.kpu import KpuSwitches

    return KpuSwitches(segment_compare=args.segment_compare, act_rounding=args.act_rounding,
                       mean_rounding=args.mean_rounding, alu_overflow=args.alu_overflow)


def _image_tensor(path: str, rng, shape: tuple, float_norm: str) -> np.ndarray:
    from qsim.images import load_image, resize_bilinear

    n, c, h, w = shape
    if c != 3:
        raise InputError(f"--image needs a 3-channel model input; this model's input is {shape}")
    rgb = resize_bilinear(load_image(path), (h, w))
    if rng.datatype == 1:
        planes = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    else:
        try:
            mean, std = (float(v) for v in float_norm.split(","))
        except ValueError as exc:
            raise InputError(f"--float-norm must be MEAN,STD; got {float_norm!r}") from exc
        planes = ((rgb - np.float32(mean)) / np.float32(std)).astype(np.float32)
    x = np.ascontiguousarray(planes.transpose(2, 0, 1))[None]
    return np.repeat(x, n, axis=0) if n > 1 else x


def _load_npy(path: str) -> np.ndarray:
    from qsim.cli.files import read_npy

    return read_npy(path, "--input")


def _load_kmodel(path: str, switches):
    """(model, executor) of a v3 or v4 kmodel, told apart by the file's first word."""
    from qsim.k210 import KmodelExecutor, read_kmodel
    from qsim.k210.kmodel_v3 import kmodel_version, read_kmodel_v3
    from qsim.k210.kmodel_v3_exec import KmodelV3Executor

    if kmodel_version(path) == 3:
        model = read_kmodel_v3(path)
        return model, KmodelV3Executor(model, switches)
    model = read_kmodel(path)
    return model, KmodelExecutor(model, switches)


def run_kmodel_cli(args) -> int:
    from qsim.cli.files import write_json_file

    model, ex = _load_kmodel(args.model, _switches(args))
    if len(model.inputs) != 1 and args.image:
        raise InputError(f"{args.model} has {len(model.inputs)} inputs; use --input with one .npy per input")
    if args.input:
        x = _load_npy(args.input)
    elif args.image:
        x = _image_tensor(args.image, model.inputs[0], model.input_shapes[0], args.float_norm)
    else:
        raise InputError("a kmodel needs --image IMG or --input RAW.npy")
    run = ex.run(x, keep=False, count_overflow=True)
    layers = [{"index": r.index, "op": r.op, "in_shape": list(r.in_shape), "out_shape": list(r.out_shape),
               "output": r.output, "kpu_ram_in": r.kpu_ram[0] if r.kpu_ram else None,
               "kpu_ram_out": r.kpu_ram[1] if r.kpu_ram else None} for r in run.records]
    outputs = []
    for i, (out, rng) in enumerate(zip(run.outputs, model.outputs)):
        vals = out.astype(np.float64)
        outputs.append({"name": f"output{i}", "memory": str(rng), "dtype": out.dtype.name, "shape": [int(out.size)],
                        "min": float(vals.min()) if vals.size else None, "max": float(vals.max()) if vals.size else None,
                        "mean": float(vals.mean()) if vals.size else None,
                        "head_bytes_hex": out.view(np.uint8)[:16].tobytes().hex(" ")})
    alu_events = sum(c[site].events for c in run.counters.values() for site in ("acc", "bn") if site in c)
    clamps = sum(c["act"].events for c in run.counters.values() if "act" in c)
    report = {"qsim_k210": SCHEMA_VERSION, "kind": "kmodel", "kmodel_version": model.version,
              "file": str(args.model),
              "switches": dataclasses.asdict(ex.switches),
              "inputs": [{"memory": str(r), "shape": list(s)} for r, s in zip(model.inputs, model.input_shapes)],
              "ops": model.op_counts(), "layers": layers, "kpu_ram_high_water": run.kpu_ram_high_water,
              "alu_overflow_events": int(alu_events), "activation_clamps": int(clamps), "outputs": outputs}
    _print_kmodel(report, args.quiet)
    if args.save_outputs:
        np.savez(args.save_outputs, **{f"output{i}": o for i, o in enumerate(run.outputs)})
        print(f"outputs written to {args.save_outputs}")
    if args.json:
        write_json_file(report, args.json)
    return 0


def _print_kmodel(rep: dict, quiet: bool) -> None:
    print(f"{rep['file']}: kmodel v{rep['kmodel_version']}, {sum(rep['ops'].values())} "
          f"{'layers' if rep['kmodel_version'] == 3 else 'nodes'} "
          f"({', '.join(f'{k} {v}' for k, v in rep['ops'].items())})")
    for inp in rep["inputs"]:
        print(f"  input  {inp['memory']} shape {tuple(inp['shape'])}")
    if not quiet:
        print(f"  {'#':>3} {'op':<17} {'in':<20} {'out':<20} {'KPU RAM in+out':>15}  writes")
        for l in rep["layers"]:
            ram = f"{(l['kpu_ram_in'] + l['kpu_ram_out']) / 1024:.1f} KiB" if l["kpu_ram_in"] is not None else ""
            print(f"  {l['index']:>3} {l['op']:<17} {str(tuple(l['in_shape'])):<20} "
                  f"{str(tuple(l['out_shape'])):<20} {ram:>15}  {l['output']}")
    peak = max(((l["kpu_ram_in"] or 0) + (l["kpu_ram_out"] or 0) for l in rep["layers"]), default=0)
    print(f"  KPU RAM: largest layer in+out {peak / 1024:.1f} KiB, highest address used "
          f"{rep['kpu_ram_high_water'] / 1024:.1f} KiB of 2048 KiB; 36-bit ALU overflow events: "
          f"{rep['alu_overflow_events']}; activation outputs clamped to 0..255: {rep['activation_clamps']}")
    for o in rep["outputs"]:
        print(f"  {o['name']} {o['memory']} x{o['shape'][0]}: min {o['min']:.6g} max {o['max']:.6g} "
              f"mean {o['mean']:.6g}; first bytes {o['head_bytes_hex']}")


def run(args) -> int:
    from qsim.cli.files import check_input_file, check_outputs

    check_outputs(args, files=("--json", "--save-outputs"))
    path = check_input_file(args.model, "model file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if path.suffix == ".kmodel" or magic in (b"LDMK", b"\x03\x00\x00\x00"):
        return run_kmodel_cli(args)
    from qsim.cli.k210_keras import run_keras_cli

    return run_keras_cli(args, _switches(args))


if __name__ == "__main__":  # pragma: no cover
    from qsim.cli import main

    sys.exit(main(["k210", *sys.argv[1:]]))
