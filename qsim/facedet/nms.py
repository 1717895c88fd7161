"""Greedy non-maximum suppression.

Boxes are visited by decreasing score (ties: lower index first, so the result is
deterministic); a box is kept unless its IoU with an already kept box is ``> iou_threshold``.
"""
from __future__ import annotations

import numpy as np

from qsim.errors import InputError
from qsim.facedet.boxes import area, as_boxes


def nms(boxes, scores, iou_threshold: float = 0.3, max_keep: int | None = None) -> np.ndarray:
    """Indices of the boxes greedy NMS keeps, by decreasing score.

    Args:
        boxes: ``(N, 4)`` x1y1x2y2.
        scores: ``(N,)``.
        iou_threshold: suppress a box whose IoU with a kept one exceeds this (0.3 typical for faces).
        max_keep: stop after this many kept boxes.

    >>> nms([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]], [0.9, 0.8, 0.7]).tolist()
    [0, 2]
    """
    b = as_boxes(boxes)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape[0] != b.shape[0]:
        raise InputError(f"nms: {b.shape[0]} boxes but {s.shape[0]} scores")
    if not 0.0 <= iou_threshold <= 1.0:
        raise InputError(f"nms: IoU threshold must be in [0, 1]; got {iou_threshold}")
    if np.isnan(s).any():
        raise InputError("nms: scores hold NaN")
    order = np.argsort(-s, kind="stable")
    areas = area(b)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if max_keep is not None and len(keep) >= max_keep:
            break
        rest = order[1:]
        ix1 = np.maximum(b[i, 0], b[rest, 0])
        iy1 = np.maximum(b[i, 1], b[rest, 1])
        ix2 = np.minimum(b[i, 2], b[rest, 2])
        iy2 = np.minimum(b[i, 3], b[rest, 3])
        inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)
