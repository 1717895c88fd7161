"""Annotated pictures: ground truth in cyan, detections in green with their score (as the paper's Fig. 4)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from qsim.errors import InputError

GT_COLOUR = (0, 255, 255)
DET_COLOUR = (0, 255, 0)


def draw_boxes(image, gt_boxes=None, det_boxes=None, det_scores=None, *, ellipses=None, width: int = 2) -> np.ndarray:
    """Draw boxes on a copy of an RGB image.

    Args:
        image: ``uint8 (H, W, 3)``.
        gt_boxes: ``(N, 4)`` x1y1x2y2, drawn cyan.
        det_boxes: ``(K, 4)`` x1y1x2y2, drawn green, labelled with ``det_scores`` if given.
        ellipses: optional FDDB ellipses ``(M, >=5)`` drawn thin cyan (to check the box rule).
        width: line width in pixels.

    Returns:
        ``uint8 (H, W, 3)`` annotated copy.
    """
    from PIL import Image, ImageDraw

    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise InputError(f"draw_boxes needs an (H, W, 3) image; got shape {arr.shape}")
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    pen = ImageDraw.Draw(im)
    if ellipses is not None:
        for major, minor, angle, cx, cy, *_ in np.asarray(ellipses, dtype=float):
            t = np.linspace(0, 2 * np.pi, 73)
            x = cx + major * np.cos(t) * np.cos(angle) - minor * np.sin(t) * np.sin(angle)
            y = cy + major * np.cos(t) * np.sin(angle) + minor * np.sin(t) * np.cos(angle)
            pen.line(list(zip(x.tolist(), y.tolist())), fill=GT_COLOUR, width=1)
    for box in np.asarray(gt_boxes if gt_boxes is not None else np.zeros((0, 4)), dtype=float).reshape(-1, 4):
        pen.rectangle(box.tolist(), outline=GT_COLOUR, width=width)
    dets = np.asarray(det_boxes if det_boxes is not None else np.zeros((0, 4)), dtype=float).reshape(-1, 4)
    for k, box in enumerate(dets):
        pen.rectangle(box.tolist(), outline=DET_COLOUR, width=width)
        if det_scores is not None:
            label = f"{float(det_scores[k]):.2f}"
            x, y = float(box[0]), max(float(box[1]) - 11, 0.0)
            pen.rectangle([x, y, x + 6 * len(label) + 2, y + 10], fill=DET_COLOUR)
            pen.text((x + 1, y), label, fill=(0, 0, 0))
    return np.asarray(im)


def save_png(image, path) -> Path:
    """Write an RGB array as PNG (parent folders created)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)
    return path
