"""The vendor's K210 face detector (kmodel v3 ``detect.kmodel``) on FDDB: recall, precision and AP.

qsim's kmodel v3 executor runs the model bit-exactly as the SDK's kpu.c on the K210 (KPU
activation ties: ``--act-rounding``), and `qsim.facedet.region` decodes it as the demo does
(5 anchors, threshold 0.7, NMS 0.3). Pictures are resized to 320x240 (half-pixel bilinear,
rounded to uint8 RGB). Ground truth: `qsim.facedet.fddb.load_fddb` (the FDDB pictures
present, ellipse -> square box); matching at IoU >= 0.5, all-point AP
(`qsim.facedet.metrics`). Reported: at the demo's threshold 0.7 (recall, precision, AP of
that truncated curve) and the AP of the full curve (detections above --ap-threshold).

    PYTHONPATH=. python bench/k210_v3_fddb.py [--kmodel detect.kmodel] [--limit N] [--json OUT]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_and_save


def main(argv=None) -> int:
    from qsim.datasets import data_root
    from qsim.facedet.fddb import load_fddb
    from qsim.facedet.metrics import evaluate
    from qsim.facedet.region import FACE_DETECT, RegionDetector
    from qsim.images import load_image
    from qsim.k210.kpu import KpuSwitches

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kmodel", default=None, help="default: <data>/kmodels/detect.kmodel")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--ap-threshold", type=float, default=0.05)
    ap.add_argument("--act-rounding", default="nncase", choices=("nncase", "half_even", "half_up"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    path = args.kmodel or str(data_root() / "kmodels" / "detect.kmodel")
    det = RegionDetector(path, FACE_DETECT, KpuSwitches(act_rounding=args.act_rounding))
    images = load_fddb().images[: args.limit]
    full, at_own = [], []
    t0 = time.perf_counter()
    for im in images:
        found = det(load_image(im.path), threshold=args.ap_threshold)
        full.append((found.boxes, found.scores, im.boxes, im.ignore))
        keep = found.scores > FACE_DETECT.threshold
        at_own.append((found.boxes[keep], found.scores[keep], im.boxes, im.ignore))
    seconds = (time.perf_counter() - t0) / max(len(images), 1)
    ev_full, ev_own = evaluate(full), evaluate(at_own)
    n_det = int(ev_own.tp[-1] + ev_own.fp[-1]) if ev_own.tp.size else 0
    result = {"kmodel": path, "act_rounding": args.act_rounding, "images": ev_full.n_images, "faces": ev_full.n_gt,
              "threshold": FACE_DETECT.threshold, "detections_at_threshold": n_det,
              "recall_at_threshold": float(ev_own.recall[-1]) if ev_own.recall.size else 0.0,
              "precision_at_threshold": float(ev_own.precision[-1]) if ev_own.precision.size else 0.0,
              "ap_at_threshold": ev_own.ap, "ap_full_curve": ev_full.ap, "ap_threshold": args.ap_threshold,
              "ap_iou_0.3_full_curve": evaluate(full, iou_threshold=0.3).ap, "seconds_per_image": seconds}
    print_and_save(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
