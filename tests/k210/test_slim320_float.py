"""slim-320.kmodel against its float ONNX model (onnxruntime, tests only) on FDDB pictures.

The vendor's own acceptance level for K210 post-training quantization is cosine >= 0.97
(nncase ``tests/config.yml``). The loss is the compiled model's quantization; the executor
itself is byte-exact (test_kmodel.py).
"""
from __future__ import annotations

import numpy as np
import pytest

from qsim.facedet import ultraface as uf
from qsim.facedet.boxes import iou_matrix
from qsim.facedet.fddb import load_fddb
from qsim.images import load_image
from qsim.k210 import KmodelExecutor

N_IMAGES = 20


def _cos(a, b):
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def runs(data_dir):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(data_dir / "kmodels" / "version-slim-320_without_postprocessing.onnx"),
                                opts, providers=["CPUExecutionProvider"])
    ex = KmodelExecutor(data_dir / "kmodels" / "slim-320.kmodel")
    out = []
    for im in load_fddb(data_dir / "fddb").images[:N_IMAGES]:
        rgb = load_image(im.path)
        x = uf.image_to_input(rgb)
        k = ex.run(x).outputs
        f = sess.run(None, {"input": (x.astype(np.float32) - 127.0) / 128.0})
        out.append((rgb.shape, k, [f[0].reshape(-1), f[1].reshape(-1)]))
    return out


def test_cosine_per_output_at_least_097(runs):
    for k in range(2):
        pooled = _cos(np.concatenate([r[1][k] for r in runs]), np.concatenate([r[2][k] for r in runs]))
        assert pooled >= 0.97, f"output {k}: cosine {pooled:.4f}"
    per_image_scores = [_cos(r[1][0], r[2][0]) for r in runs]
    assert min(per_image_scores) >= 0.99


def test_decoded_faces_match(runs):
    ious = []
    n_float = n_k210 = 0
    for shape, k, f in runs:
        wh = (shape[1], shape[0])
        fb, _ = uf.detect(f[0], f[1], wh)
        kb, _ = uf.detect(k[0], k[1], wh)
        n_float += len(fb)
        n_k210 += len(kb)
        if len(fb):
            best = iou_matrix(fb, kb).max(axis=1) if len(kb) else np.zeros(len(fb))
            ious.extend(best.tolist())
    assert n_float >= N_IMAGES // 2 and abs(n_k210 - n_float) <= 0.2 * n_float
    ious = np.array(ious)
    assert np.median(ious) >= 0.7 and np.mean(ious >= 0.5) >= 0.9, ious
