"""Inputs for `qsim eval` on the real MLPerf Tiny ResNet-8 and vww_96 files: FDDB pictures.

    QSIM_DATA=../shared/data PYTHONPATH=. python bench/mlperf_tiny_inputs.py OUT_DIR [--n 200]

Writes, from ``--n`` FDDB pictures (a fixed sample; square centre crop, bilinear resize):

* ``vww_fddb.npz``: ``x`` (N, 96, 96, 3) in [0, 1] (vww_96's ``rescale=1/255``) and ``y`` = 1
  for every picture: each FDDB picture holds at least one person (class 1 of vww_96,
  ``person`` after ``non_person`` in its training folders), so top-1 is person recall;
* ``resnet_fddb.npz``: ``x`` (N, 32, 32, 3), raw pixels 0..255 as MLPerf's ResNet-8 takes them,
  no labels (not CIFAR-10 classes: `qsim eval` reports top-1 agreement with fp32);
* ``resnet_cal.npy`` / ``vww_cal.npy``: the first 16 samples, explicit K210 calibration;
  ``resnet_x.npy``: the first 100, for ``qsim profile --plan-out``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import fddb_images


def crops(files, size: int) -> np.ndarray:
    from qsim.images import load_image, resize_bilinear

    out = []
    for f in files:
        img = load_image(f)
        h, w = img.shape[:2]
        s = min(h, w)
        y, x = (h - s) // 2, (w - s) // 2
        out.append(resize_bilinear(np.ascontiguousarray(img[y:y + s, x:x + s]), (size, size)))
    return np.stack(out).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--n", type=int, default=200)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    files = fddb_images(args.n)
    vww, resnet = crops(files, 96) / np.float32(255), crops(files, 32)
    np.savez(args.out / "vww_fddb.npz", x=vww, y=np.ones(len(vww), np.int64))
    np.savez(args.out / "resnet_fddb.npz", x=resnet)
    np.save(args.out / "vww_cal.npy", vww[:16])
    np.save(args.out / "resnet_cal.npy", resnet[:16])
    np.save(args.out / "resnet_x.npy", resnet[:100])
    print(f"wrote {args.out}: {len(files)} FDDB pictures")


if __name__ == "__main__":
    main()
