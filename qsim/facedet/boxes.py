"""Axis-aligned boxes ``[x1, y1, x2, y2]`` in pixels with edges at integers.

Width is ``x2 - x1`` (no "+1" convention): a box covering pixels 0..9 is ``[0, 0, 10, 10]``.
"""
from __future__ import annotations

import numpy as np

from qsim.errors import InputError


def as_boxes(boxes, what: str = "boxes") -> np.ndarray:
    """``boxes`` as a float64 ``(N, 4)`` array; InputError on a wrong shape or NaN."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise InputError(f"{what} must be (N, 4) [x1, y1, x2, y2]; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"{what} hold NaN/Inf")
    return arr


def area(boxes) -> np.ndarray:
    """Areas of ``(..., 4)`` boxes (0 for inverted boxes)."""
    b = np.asarray(boxes, dtype=np.float64)
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def iou_matrix(a, b) -> np.ndarray:
    """Intersection over union of every box in ``a (N, 4)`` with every box in ``b (M, 4)``.

    Returns:
        ``(N, M)`` float64; 0 where the union is empty.

    >>> iou_matrix([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30]]).round(4).tolist()
    [[0.3333, 0.0]]
    """
    a = as_boxes(a, "first boxes")
    b = as_boxes(b, "second boxes")
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    union = area(a)[:, None] + area(b)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
