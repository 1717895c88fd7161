"""Decoding of the Ultra-Light-Fast-Generic-Face-Detector "slim" outputs (the slim-320 kmodel).

Written from the public description of the model's SSD head (``vision/ssd/config/fd_config.py``
of Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB; no code copied):

* input W x H = 320 x 240; four heads at strides 8, 16, 32, 64 with feature maps
  ceil(W/s) x ceil(H/s) = 40x30, 20x15, 10x8, 5x4;
* min boxes (pixels) per head: (10, 16, 24), (32, 48), (64, 96), (128, 192, 256);
* priors (centre form, relative to the image), in the order head -> row j -> column i ->
  min box: centre ((i + 0.5)/fm_w, (j + 0.5)/fm_h), size (m/W, m/H), clipped to [0, 1]
  (3600 + 600 + 160 + 60 = 4420 priors);
* regressions decode with centre variance 0.1 and size variance 0.2:
  ``c = prior_c + loc_c * 0.1 * prior_size``, ``size = prior_size * exp(loc_size * 0.2)``;
* scores are softmax (background, face); detections = face score > threshold, then NMS.
"""
from __future__ import annotations

import math

import numpy as np

from qsim.errors import InputError

STRIDES = (8, 16, 32, 64)
MIN_BOXES = ((10, 16, 24), (32, 48), (64, 96), (128, 192, 256))
CENTER_VARIANCE = 0.1
SIZE_VARIANCE = 0.2


def priors(width: int = 320, height: int = 240) -> np.ndarray:
    """float64 (N, 4) priors (cx, cy, w, h) relative to the image.

    >>> p = priors(); p.shape, p[0].round(4).tolist()
    ((4420, 4), [0.0125, 0.0167, 0.0312, 0.0417])
    """
    out = []
    for stride, boxes in zip(STRIDES, MIN_BOXES):
        fm_w, fm_h = math.ceil(width / stride), math.ceil(height / stride)
        for j in range(fm_h):
            for i in range(fm_w):
                for m in boxes:
                    out.append(((i + 0.5) / fm_w, (j + 0.5) / fm_h, m / width, m / height))
    return np.clip(np.array(out, dtype=np.float64), 0.0, 1.0)


def decode_boxes(regressions: np.ndarray, prior_boxes: np.ndarray) -> np.ndarray:
    """Corner boxes (x1, y1, x2, y2) relative to the image from (N, 4) SSD regressions."""
    loc = np.asarray(regressions, dtype=np.float64).reshape(-1, 4)
    if loc.shape[0] != prior_boxes.shape[0]:
        raise InputError(f"{loc.shape[0]} regressions for {prior_boxes.shape[0]} priors")
    c = prior_boxes[:, :2] + loc[:, :2] * CENTER_VARIANCE * prior_boxes[:, 2:]
    s = prior_boxes[:, 2:] * np.exp(loc[:, 2:] * SIZE_VARIANCE)
    return np.concatenate([c - s / 2, c + s / 2], axis=1)


def detect(scores: np.ndarray, regressions: np.ndarray, image_wh: tuple[int, int],
           threshold: float = 0.7, iou: float = 0.3, width: int = 320, height: int = 240):
    """Face boxes in pixels of an image of size `image_wh` and their scores, after NMS.

    Args:
        scores: (N, 2) softmax scores (background, face), any layout flattening to that.
        regressions: (N, 4) raw regressions.
        image_wh: (width, height) of the original picture (the model saw it resized).
    """
    from qsim.facedet.nms import nms

    s = np.asarray(scores, dtype=np.float64).reshape(-1, 2)[:, 1]
    boxes = decode_boxes(regressions, priors(width, height))
    keep = s > threshold
    boxes, s = boxes[keep], s[keep]
    if boxes.shape[0]:
        order = nms(boxes, s, iou)
        boxes, s = boxes[order], s[order]
    scale = np.array([image_wh[0], image_wh[1], image_wh[0], image_wh[1]], dtype=np.float64)
    return boxes * scale, s


def image_to_input(rgb: np.ndarray, width: int = 320, height: int = 240) -> np.ndarray:
    """uint8 NCHW (1, 3, H, W) of an RGB picture resized (half-pixel bilinear) and rounded."""
    from qsim.images import resize_bilinear

    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InputError(f"expected an RGB image (H, W, 3), got shape {arr.shape}")
    resized = np.clip(np.rint(resize_bilinear(arr, (height, width))), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(resized.transpose(2, 0, 1))[None]
