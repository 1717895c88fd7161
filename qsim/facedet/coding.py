"""The face head's output contract: anchors, box coding (the paper's eq. 3), label assignment.

Head output, NHWC, 125 channels, linear (no sigmoid in the graph):
    * ``[0:25]``    score logits of templates 0..24;
    * ``[25:50]``   tx, ``[50:75]`` ty, ``[75:100]`` tw, ``[100:125]`` th:
      template ``t``'s delta ``k`` (k = 0..3 for tx, ty, tw, th) is channel ``25 + 25*k + t``.

Cell ``(i, j)`` of a stride-``s`` map has its centre at ``((j + 0.5) s, (i + 0.5) s)`` in input
pixels (pixel edges at integers). The anchor of template ``t`` there is the template box
shifted to that centre.

Eq. (3), with ``(x, y, w, h)`` a box's centre and size and ``(xa, ya, wa, ha)`` the anchor's::

    tx = (x - xa) / wa    ty = (y - ya) / ha    tw = log(w / wa)    th = log(h / ha)

Strides: head A (``block_13_expand_relu``) 16, head B (``out_relu``) 32, head C 16.
"""
from __future__ import annotations

import numpy as np

from qsim.errors import InputError
from qsim.facedet.boxes import iou_matrix
from qsim.facedet.templates import load_templates

NUM_DELTAS = 4
HEAD_STRIDES = {"A": 16, "B": 32, "C": 16}
# exp() of larger log-ratios would blow a box past ~60x its anchor: clamp like Faster R-CNN.
MAX_LOG_RATIO = float(np.log(1000.0 / 16.0))


def head_channels(num_templates: int = 25) -> int:
    """Channels of the head output: ``T * (1 + 4)`` (125 for the 25 Tiny-Face templates)."""
    return num_templates * (1 + NUM_DELTAS)


def split_head(out, num_templates: int = 25):
    """Split a head output ``(..., T*5)`` into logits ``(..., T)`` and deltas ``(..., T, 4)``.

    >>> out = np.arange(125.0)
    >>> logits, deltas = split_head(out)
    >>> logits[3], deltas[3].tolist()   # template 3: channels 3, 28, 53, 78, 103
    (np.float64(3.0), [28.0, 53.0, 78.0, 103.0])
    """
    out = np.asarray(out)
    t = num_templates
    if out.shape[-1] != head_channels(t):
        raise InputError(f"face head output must have {head_channels(t)} channels; got shape {out.shape}")
    logits = out[..., :t]
    deltas = out[..., t:].reshape(out.shape[:-1] + (NUM_DELTAS, t))
    return logits, np.swapaxes(deltas, -1, -2)


def pack_head(logits, deltas) -> np.ndarray:
    """Inverse of `split_head`: ``(..., T)`` logits and ``(..., T, 4)`` deltas -> ``(..., T*5)``."""
    logits = np.asarray(logits)
    deltas = np.asarray(deltas)
    if deltas.shape != logits.shape + (NUM_DELTAS,):
        raise InputError(f"deltas shape {deltas.shape} does not match logits {logits.shape} + (4,)")
    flat = np.swapaxes(deltas, -1, -2).reshape(logits.shape[:-1] + (NUM_DELTAS * logits.shape[-1],))
    return np.concatenate([logits, flat], axis=-1)


def anchors(out_h: int, out_w: int, stride: float, templates=None) -> np.ndarray:
    """Every template placed at every cell centre.

    Returns:
        ``(out_h, out_w, T, 4)`` float64 boxes ``[x1, y1, x2, y2]`` in input pixels.

    >>> a = anchors(2, 3, 16, [[-8, -10, 8, 10]])
    >>> a.shape, a[1, 2, 0].tolist()   # cell (1, 2) centre = (40, 24)
    ((2, 3, 1, 4), [32.0, 14.0, 48.0, 34.0])
    """
    tpl = load_templates() if templates is None else np.asarray(templates, dtype=np.float64)
    if tpl.ndim != 2 or tpl.shape[1] != 4:
        raise InputError(f"templates must be (T, 4); got shape {tpl.shape}")
    if out_h <= 0 or out_w <= 0 or stride <= 0:
        raise InputError(f"anchors need positive map size and stride; got {out_h}x{out_w}, stride {stride}")
    cy = (np.arange(out_h, dtype=np.float64) + 0.5) * stride
    cx = (np.arange(out_w, dtype=np.float64) + 0.5) * stride
    shift = np.zeros((out_h, out_w, 1, 4))
    shift[..., 0] = shift[..., 2] = cx[None, :, None]
    shift[..., 1] = shift[..., 3] = cy[:, None, None]
    return shift + tpl[None, None, :, :]


def _centre_size(boxes):
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


def encode(boxes, anchor_boxes) -> np.ndarray:
    """Eq. (3): deltas ``(tx, ty, tw, th)`` of ``boxes`` relative to ``anchor_boxes``.

    Both are ``(..., 4)`` x1y1x2y2 and broadcast against each other.

    Raises:
        InputError: a box or an anchor with zero or negative width/height.

    >>> encode([[10, 20, 30, 60]], [[0, 0, 20, 40]]).tolist()   # (20, 40, 20, 40) vs (10, 20, 20, 40)
    [[0.5, 0.5, 0.0, 0.0]]
    """
    b = np.asarray(boxes, dtype=np.float64)
    a = np.asarray(anchor_boxes, dtype=np.float64)
    x, y, w, h = _centre_size(b)
    xa, ya, wa, ha = _centre_size(a)
    if (w <= 0).any() or (h <= 0).any():
        raise InputError("encode: a box has zero or negative width/height")
    if (wa <= 0).any() or (ha <= 0).any():
        raise InputError("encode: an anchor has zero or negative width/height")
    return np.stack([(x - xa) / wa, (y - ya) / ha, np.log(w / wa), np.log(h / ha)], axis=-1)


def decode_deltas(deltas, anchor_boxes, max_log_ratio: float = MAX_LOG_RATIO) -> np.ndarray:
    """Inverse of `encode`: boxes ``(..., 4)`` x1y1x2y2 from deltas and anchors (broadcast).

    ``tw``/``th`` are clamped to ``max_log_ratio`` (log(1000/16)) before ``exp`` so a wild
    output cannot produce an infinite box.

    >>> decode_deltas([[0.5, 0.5, 0.0, 0.0]], [[0, 0, 20, 40]]).tolist()
    [[10.0, 20.0, 30.0, 60.0]]
    """
    d = np.asarray(deltas, dtype=np.float64)
    xa, ya, wa, ha = _centre_size(np.asarray(anchor_boxes, dtype=np.float64))
    x = xa + d[..., 0] * wa
    y = ya + d[..., 1] * ha
    w = wa * np.exp(np.minimum(d[..., 2], max_log_ratio))
    h = ha * np.exp(np.minimum(d[..., 3], max_log_ratio))
    return np.stack([x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h], axis=-1)


def sigmoid(x) -> np.ndarray:
    """Numerically stable logistic function (no overflow warning for large |x|)."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def assign(gt, anchor_boxes, pos_iou: float = 0.7, neg_iou: float = 0.3):
    """Training labels of every cell-template from ground-truth boxes.

    A cell-template is positive (1) if its anchor's IoU with some gt is ``>= pos_iou``, or it is
    the best anchor of some gt (so every gt gets at least one positive); negative (0) if its max
    IoU ``< neg_iou``; otherwise ignored (-1). When several gts share one best anchor, the gt
    with the higher IoU keeps it (ties: the later gt).

    Args:
        gt: ``(N, 4)`` x1y1x2y2 boxes (N may be 0).
        anchor_boxes: ``(H, W, T, 4)`` from `anchors`.

    Returns:
        ``labels (H, W, T) int8`` and ``matched (H, W, T) int64``: index of the gt each
        cell-template is matched to (its max-IoU gt, or the gt it is best for); -1 if N = 0.
    """
    a = np.asarray(anchor_boxes, dtype=np.float64)
    if a.ndim != 4 or a.shape[-1] != 4:
        raise InputError(f"assign: anchors must be (H, W, T, 4); got shape {a.shape}")
    if not 0 <= neg_iou <= pos_iou <= 1:
        raise InputError(f"assign: need 0 <= neg_iou <= pos_iou <= 1; got {neg_iou}, {pos_iou}")
    grid = a.shape[:3]
    flat = a.reshape(-1, 4)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    labels = np.zeros(flat.shape[0], dtype=np.int8)
    matched = np.full(flat.shape[0], -1, dtype=np.int64)
    if gt.shape[0] == 0:
        return labels.reshape(grid), matched.reshape(grid)
    iou = iou_matrix(gt, flat)  # (N, A)
    best_gt = iou.argmax(axis=0)
    best_iou = iou[best_gt, np.arange(flat.shape[0])]
    matched[:] = best_gt
    labels[best_iou < neg_iou] = 0
    labels[(best_iou >= neg_iou) & (best_iou < pos_iou)] = -1
    labels[best_iou >= pos_iou] = 1
    # Every gt keeps its best anchor, even below pos_iou. Process gts in increasing IoU so the
    # strongest claim on a shared anchor is written last.
    best_anchor = iou.argmax(axis=1)
    claim = iou[np.arange(gt.shape[0]), best_anchor]
    for g in np.argsort(claim, kind="stable"):
        if claim[g] > 0:
            labels[best_anchor[g]] = 1
            matched[best_anchor[g]] = g
    return labels.reshape(grid), matched.reshape(grid)


def decode(out, stride: float, templates=None, score_threshold: float = 0.5, counts: dict | None = None):
    """Boxes and scores from one head output.

    A cell-template whose logit or any box delta is NaN/Inf (an fp16 or wrap overflow upstream)
    is no detection: the rest decode as if it were absent, so the AP of a format that overflows
    is still a number. The overflow itself is counted by the executor's counters; `counts`
    (optional dict) receives ``"non_finite"``: how many cell-templates were dropped here.

    Args:
        out: ``(H, W, T*5)`` (or ``(1, H, W, T*5)``) float head output (linear logits).
        stride: input pixels per output cell.
        templates: ``(T, 4)``; default the bundled Tiny-Face templates.
        score_threshold: keep cell-templates with ``sigmoid(logit) >= score_threshold``.
        counts: optional dict; ``counts["non_finite"]`` is increased by the dropped cell-templates.

    Returns:
        ``boxes (K, 4)`` x1y1x2y2 in input pixels and ``scores (K,)`` in (0, 1), sorted by
        decreasing score (stable: raster order, then template, among equal scores).
    """
    tpl = load_templates() if templates is None else np.asarray(templates, dtype=np.float64)
    arr = np.asarray(out, dtype=np.float64)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3:
        raise InputError(f"decode: head output must be (H, W, C) or (1, H, W, C); got shape {np.shape(out)}")
    logits, deltas = split_head(arr, tpl.shape[0])
    finite = np.isfinite(logits) & np.isfinite(deltas).all(axis=-1)
    if counts is not None:
        counts["non_finite"] = counts.get("non_finite", 0) + int(finite.size - np.count_nonzero(finite))
    scores = sigmoid(np.where(finite, logits, -np.inf))
    keep = finite & (scores >= score_threshold)
    if not keep.any():
        return np.zeros((0, 4)), np.zeros(0)
    anc = anchors(arr.shape[0], arr.shape[1], stride, tpl)
    boxes = decode_deltas(deltas[keep], anc[keep])
    kept_scores = scores[keep]
    order = np.argsort(-kept_scores, kind="stable")
    return boxes[order], kept_scores[order]
