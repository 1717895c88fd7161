"""The four real MLPerf Tiny reference Keras files: qsim float / fp16 against TensorFlow per layer.

The files are not in this repository (Apache-2.0, mlcommons/tiny); put them in one folder:

    benchmark/training/visual_wake_words/trained_models/vww_96.h5
    benchmark/training/image_classification/trained_models/pretrainedResnet.h5
    benchmark/training/anomaly_detection/trained_models/ad01.h5
    benchmark/training/streaming_wakeword/trained_models/str_ww_ref_model.h5

and run

    PYTHONPATH=. python bench/mlperf_tiny_float.py DIR

qsim reads each file with h5py; TensorFlow gets the same file (Keras 3 refuses the
``groups`` key the Keras 2.x DepthwiseConv2D configs of vww_96 and str_ww carry, so their
architecture is rebuilt from the file's config without it and the weights loaded from the
file). Inputs: 4 samples, uniform [0, 1] (images, spectrograms), standard normal (ad01).
Prints, per model: nodes, layers compared, worst max|err| / max|activation| of float vs TF
and of fp16 vs float, and whether the top-1 class of float and TF agree on every sample.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FILES = ("vww_96.h5", "pretrainedResnet.h5", "ad01.h5", "str_ww_ref_model.h5")


def keras_model(path: Path):
    import h5py
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except TypeError:  # Keras 2.x DepthwiseConv2D config with "groups": rebuild without it
        with h5py.File(path, "r") as f:
            config = json.loads(f.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "DepthwiseConv2D":
                layer["config"].pop("groups", None)
        model = keras.Model.from_config(config["config"])
        model.load_weights(path)
        return model


def measure(path: Path) -> dict:
    import qsim
    from qsim.executors import float_exec, fp16_exec
    from reference.tf_trace import trace_model

    model = keras_model(path)
    rng = np.random.default_rng(0)
    shape = tuple(model.input_shape[1:])
    x = (rng.normal(size=(4, *shape)) if len(shape) == 1 else rng.uniform(0, 1, (4, *shape))).astype(np.float32)
    reference = trace_model(model, x)
    graph = qsim.load_model(path)
    full = float_exec.run(graph, x).values
    half = fp16_exec.run(graph, x).values

    def rel(a, b):
        return float(np.max(np.abs(a.astype(np.float64) - b))) / (float(np.max(np.abs(b))) or 1.0)

    vs_tf = max((rel(full[k], reference[k]), k) for k in full if k in reference)
    vs_float = max((rel(half[k], full[k]), k) for k in full)
    out = graph.outputs[0]
    tf_out = np.asarray(model(x))
    top1 = bool(np.array_equal(full[out].reshape(4, -1).argmax(1), tf_out.reshape(4, -1).argmax(1)))
    return {"model": path.name, "input": list(shape), "nodes": len(graph),
            "compared": sum(1 for k in full if k in reference), "float_vs_tf": vs_tf[0], "float_worst": vs_tf[1],
            "fp16_vs_float": vs_float[0], "fp16_worst": vs_float[1], "top1_agree": top1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", help="folder holding the four MLPerf Tiny .h5 files")
    args = parser.parse_args(argv)
    missing = [f for f in FILES if not (Path(args.dir) / f).is_file()]
    if missing:
        print(f"missing in {args.dir}: {', '.join(missing)} (see the module docstring)", file=sys.stderr)
        return 1
    print("| file | input | nodes | layers vs TF | float vs TF (worst layer) | fp16 vs float | top-1 = TF |")
    print("|:--|:--|--:|--:|:--|:--|:--|")
    for name in FILES:
        r = measure(Path(args.dir) / name)
        print(f"| {r['model']} | {'x'.join(map(str, r['input']))} | {r['nodes']} | {r['compared']} | "
              f"{r['float_vs_tf']:.1e} ({r['float_worst']}) | {r['fp16_vs_float']:.1e} | {r['top1_agree']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
