"""qsim's TFLite backend vs TF's BUILTIN_REF interpreter: same int8 model, same input, one run.

Models: the A98 face detector (``qsim/assets/a98_alpha1.0.h5``, see common.model_path)
converted to int8 per-channel at 224x224 (calibrated on FDDB pictures, cached under
.qsim-cache/), and the MLPerf-Tiny-shaped test models of tests/tflite. For each: the
BUILTIN_REF invoke time and the qsim `Program.run` time in this process, one thread and
``prepare(threads=2)`` (median of --repeat runs each, after one warm-up run of each), and
whether every intermediate tensor of both qsim runs is bit-exact.

    PYTHONPATH=. python bench/bench_tflite.py [--size 224] [--calib 8] [--repeat 21] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, REPO, fddb_images, machine_facts, model_path

sys.path.insert(0, str(REPO / "tests" / "tflite"))


def convert_a98(tf, size: int, n_calib: int, dynamic: bool = False) -> bytes:
    """A98 int8 per-channel, calibrated on n_calib FDDB pictures at size x size; with
    `dynamic` the input H x W is -1 (the ZeroPadding2D stay PAD ops, so the model is the
    Keras network at every pyramid size, which `qsim sweep --formats tflite:F` needs)."""
    import keras

    from qsim.images import load_image, mobilenet_preprocess, resize_bilinear

    src = model_path(None)
    out = CACHE / f"{src.stem}_int8_{'dyn' if dynamic else size}.tflite"
    if out.is_file():
        return out.read_bytes()
    base = keras.models.load_model(src, compile=False)
    inp = keras.Input((None, None, 3) if dynamic else (size, size, 3), batch_size=1)
    model = keras.Model(inp, base(inp))
    calib = [mobilenet_preprocess(resize_bilinear(load_image(p), (size, size)))[None].astype(np.float32)
             for p in fddb_images(n_calib)]

    def rep():
        for c in calib:
            yield [c]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    buf = conv.convert()
    CACHE.mkdir(exist_ok=True)
    out.write_bytes(buf)
    return buf


def median_time(fn, repeat: int) -> float:
    """Median wall time of `repeat` calls (the machine is shared: one call is noise)."""
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def bench_one(tf, name: str, buf: bytes, x_float: np.ndarray | None = None, repeat: int = 21) -> dict:
    from qsim.tflite import prepare, quantize_input, read_tflite_bytes

    m = read_tflite_bytes(buf, name=name)
    t_in = m.tensors[m.inputs[0]]
    rng = np.random.default_rng(0)
    if x_float is not None:
        x = quantize_input(t_in, x_float)
    else:
        x = rng.integers(-128, 128, t_in.shape).astype(t_in.dtype)
    it = tf.lite.Interpreter(model_content=buf,
                             experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
                             experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    it.set_tensor(m.inputs[0], x)
    it.invoke()  # warm-up
    t_ref = median_time(it.invoke, repeat)
    t0 = time.perf_counter()
    prog = prepare(m)
    t_prep = time.perf_counter() - t0
    prog2 = prepare(m, threads=2)
    runs = [prog.run(x), prog2.run(x)]  # warm-up (and the runs whose tensors are checked)
    t_qsim = median_time(lambda: prog.run(x), repeat)
    t_qsim2 = median_time(lambda: prog2.run(x), repeat)
    differ = 0
    checked = 0
    for op in m.operators:
        for i in op.outputs:
            for run in runs:
                differ += int(np.count_nonzero(it.get_tensor(i) != run.tensors[i]))
            checked += int(runs[0].tensors[i].size)
    return {"model": name, "ops": len(m.operators), "builtin_ref_s": t_ref, "qsim_s": t_qsim,
            "qsim_2threads_s": t_qsim2, "qsim_prepare_s": t_prep, "speedup": t_ref / t_qsim,
            "speedup_2threads": t_ref / t_qsim2, "repeat": repeat, "values_checked": checked,
            "values_differ": differ}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--calib", type=int, default=8)
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--repeat", type=int, default=21, help="timed runs per side (the median is reported)")
    ap.add_argument("--export-dynamic", action="store_true",
                    help="only write .qsim-cache/<model>_int8_dyn.tflite (dynamic H x W, for qsim sweep)")
    args = ap.parse_args(argv)
    import tensorflow as tf

    if args.export_dynamic:
        convert_a98(tf, args.size, args.calib, dynamic=True)
        print(CACHE / f"{model_path(None).stem}_int8_dyn.tflite")
        return 0

    import tflite_testmodels as tm

    from qsim.images import load_image, mobilenet_preprocess, resize_bilinear

    rows = []
    a98 = convert_a98(tf, args.size, args.calib)
    img = fddb_images(1, seed=1)[0]
    xf = mobilenet_preprocess(resize_bilinear(load_image(img), (args.size, args.size)))[None].astype(np.float32)
    rows.append(bench_one(tf, f"A98 int8 {args.size}x{args.size}", a98, xf, args.repeat))
    for name in ("resnet8", "dscnn", "mobilenet"):
        rows.append(bench_one(tf, f"{name}-like (tests/tflite)", tm.MODELS[name](tf), repeat=args.repeat))
    facts = machine_facts()
    print(json.dumps(facts))
    print("| model | ops | BUILTIN_REF (ms) | qsim, 1 thread (ms) | speed-up | qsim, threads=2 (ms) | speed-up "
          "| tensors bit-exact |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        ok = "yes" if r["values_differ"] == 0 else f"NO ({r['values_differ']} differ)"
        print(f"| {r['model']} | {r['ops']} | {r['builtin_ref_s'] * 1e3:.3f} | {r['qsim_s'] * 1e3:.3f} | "
              f"{r['speedup']:.1f}x | {r['qsim_2threads_s'] * 1e3:.3f} | {r['speedup_2threads']:.1f}x | "
              f"{ok} ({r['values_checked']} values, both runs) |")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": facts, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
