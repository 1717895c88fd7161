"""slim-320 on FDDB: the compiled K210 kmodel (qsim's bit-exact executor) vs its float ONNX model.

Reports cosine similarity per output (pooled and per-image range) and face-detection AP at
IoU >= 0.5 (all-point interpolation, `qsim.facedet.metrics.evaluate`) of both models on the
FDDB images present in the data folder. Pictures are resized to 320x240 (half-pixel
bilinear, rounded to uint8); the float model gets (p - 127)/128, the kmodel the same bytes.
Detections: face score > --threshold (default 0.7; AP uses --ap-threshold 0.05 so the PR
curve spans low scores), NMS IoU 0.3, priors of `qsim.facedet.ultraface`.

    PYTHONPATH=. python bench/k210_slim320_fddb.py [--limit N] [--json OUT]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_and_save


def main(argv=None) -> int:
    import onnxruntime as ort

    from qsim.datasets import data_path
    from qsim.facedet import ultraface as uf
    from qsim.facedet.fddb import load_fddb
    from qsim.facedet.metrics import evaluate
    from qsim.images import load_image
    from qsim.k210 import KmodelExecutor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--ap-threshold", type=float, default=0.05)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    kdir = data_path("kmodels")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(kdir / "version-slim-320_without_postprocessing.onnx"), opts,
                                providers=["CPUExecutionProvider"])
    ex = KmodelExecutor(kdir / "slim-320.kmodel")
    images = load_fddb().images[: args.limit]
    per = {"float": [], "k210": []}
    cos = {0: [], 1: []}
    pooled = {"float": [[], []], "k210": [[], []]}
    t_k = 0.0
    for im in images:
        rgb = load_image(im.path)
        wh = (rgb.shape[1], rgb.shape[0])
        x = uf.image_to_input(rgb)
        t0 = time.perf_counter()
        k = ex.run(x).outputs
        t_k += time.perf_counter() - t0
        f = [o.reshape(-1) for o in sess.run(None, {"input": (x.astype(np.float32) - 127.0) / 128.0})]
        for j in range(2):
            a, b = k[j].astype(np.float64), f[j].astype(np.float64)
            cos[j].append(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
            pooled["k210"][j].append(k[j])
            pooled["float"][j].append(f[j])
        for name, out in (("float", f), ("k210", k)):
            boxes, scores = uf.detect(out[0], out[1], wh, threshold=args.ap_threshold)
            per[name].append((boxes, scores, im.boxes, im.ignore))
    result = {"images": len(images), "kmodel_seconds_per_image": t_k / max(len(images), 1)}
    for j, name in ((0, "scores"), (1, "regressions")):
        a = np.concatenate(pooled["k210"][j]).astype(np.float64)
        b = np.concatenate(pooled["float"][j]).astype(np.float64)
        result[f"cosine_{name}"] = {"pooled": float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)),
                                    "per_image_min": min(cos[j]), "per_image_median": float(np.median(cos[j])),
                                    "per_image_max": max(cos[j])}
    for name in ("float", "k210"):
        ev = evaluate(per[name])
        result[f"ap_{name}"] = ev.ap
        result["n_gt"] = ev.n_gt
    print_and_save(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
