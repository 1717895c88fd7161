"""Detection accuracy: greedy matching at IoU >= 0.5, precision/recall, AP, FDDB-style discrete ROC.

Matching (per image): detections are visited by decreasing score (ties: input order); each
takes the *still unmatched* counted gt box with the highest IoU if that IoU is ``>= iou_threshold``
(a true positive); otherwise, if it overlaps an ``ignore`` gt box by ``>= iou_threshold`` it is
dropped from the evaluation; otherwise it is a false positive. (COCO-style greedy matching;
FDDB's official tool uses a bipartite matching on a continuous score instead.)

Curves are built over all images, at every *distinct* detection score (detections with equal
scores enter together, so the result does not depend on their order).

AP is the all-point interpolated area under the precision/recall curve (PASCAL VOC 2010+):
precision is replaced by its running maximum from the right, then summed over recall steps.
The discrete ROC is FDDB's: true-positive rate against the absolute number of false positives.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qsim.errors import InputError
from qsim.facedet.boxes import as_boxes, iou_matrix


def match_image(det_boxes, det_scores, gt_boxes, gt_ignore=None, iou_threshold: float = 0.5):
    """Label each detection of one image.

    Returns:
        ``(is_tp (K,) bool, is_ignored (K,) bool)`` in the input order of the detections;
        a detection that is neither is a false positive.

    >>> tp, ign = match_image([[0, 0, 10, 10], [1, 1, 10, 10]], [0.9, 0.8], [[0, 0, 10, 10]])
    >>> tp.tolist(), ign.tolist()
    ([True, False], [False, False])
    """
    d = as_boxes(det_boxes, "detections")
    s = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    g = as_boxes(gt_boxes, "ground-truth boxes")
    if s.shape[0] != d.shape[0]:
        raise InputError(f"{d.shape[0]} detections but {s.shape[0]} scores")
    ign = np.zeros(g.shape[0], bool) if gt_ignore is None else np.asarray(gt_ignore, bool).reshape(-1)
    if ign.shape[0] != g.shape[0]:
        raise InputError(f"{g.shape[0]} gt boxes but {ign.shape[0]} ignore flags")
    is_tp = np.zeros(d.shape[0], bool)
    is_ignored = np.zeros(d.shape[0], bool)
    if d.shape[0] == 0 or g.shape[0] == 0:
        return is_tp, is_ignored
    iou = iou_matrix(d, g)
    free = ~ign
    for k in np.argsort(-s, kind="stable"):
        cand = np.where(free, iou[k], -1.0)
        best = int(np.argmax(cand))
        if cand[best] >= iou_threshold:
            is_tp[k] = True
            free[best] = False
        elif ign.any() and iou[k, ign].max() >= iou_threshold:
            is_ignored[k] = True
    return is_tp, is_ignored


def average_precision(recall, precision) -> float:
    """All-point interpolated AP (VOC 2010+) of a PR curve given at decreasing score thresholds.

    >>> average_precision([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3])
    0.8333333333333333
    """
    r = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    p = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]  # precision envelope
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


@dataclass
class DetectionEval:
    """Accuracy of a detector over a dataset.

    Attributes:
        ap: all-point interpolated average precision at IoU >= ``iou_threshold``.
        n_gt: counted gt faces; n_images: images evaluated.
        thresholds: distinct detection scores, decreasing; the curves hold one point per threshold
            (detections with score >= threshold).
        tp, fp: cumulative true/false positives; precision, recall: the PR curve.
    """

    ap: float
    iou_threshold: float
    n_gt: int
    n_images: int
    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    precision: np.ndarray
    recall: np.ndarray

    def tpr_at_fp(self, n_fp: int) -> float:
        """FDDB discrete ROC: the best true-positive rate with at most ``n_fp`` false positives."""
        ok = self.fp <= n_fp
        return float(self.recall[ok].max()) if ok.any() else 0.0

    def roc(self):
        """FDDB discrete ROC: ``(false positives, true-positive rate)`` per threshold."""
        return self.fp.copy(), self.recall.copy()

    def to_dict(self, points: int = 0) -> dict:
        """JSON-ready summary; ``points > 0`` adds that many PR points evenly spaced in the curve."""
        out = {
            "ap": self.ap,
            "iou_threshold": self.iou_threshold,
            "n_gt": self.n_gt,
            "n_images": self.n_images,
            "n_detections": int(self.tp[-1] + self.fp[-1]) if self.tp.size else 0,
            "max_recall": float(self.recall[-1]) if self.recall.size else 0.0,
            "tpr_at_fp": {str(n): self.tpr_at_fp(n) for n in (0, 10, 50, 100, 500)},
        }
        if points and self.thresholds.size:
            idx = np.unique(np.linspace(0, self.thresholds.size - 1, points).round().astype(int))
            out["curve"] = {
                "threshold": self.thresholds[idx].tolist(),
                "precision": self.precision[idx].tolist(),
                "recall": self.recall[idx].tolist(),
                "fp": self.fp[idx].tolist(),
            }
        return out


def evaluate(per_image, iou_threshold: float = 0.5) -> DetectionEval:
    """AP and curves over images.

    Args:
        per_image: iterable of ``(det_boxes, det_scores, gt_boxes, gt_ignore)`` (``gt_ignore``
            may be None).
        iou_threshold: IoU needed for a match (0.5 in the paper).

    Raises:
        InputError: no counted gt face at all (AP undefined).
    """
    scores, tps, fps = [], [], []
    n_gt = 0
    n_images = 0
    for det_boxes, det_scores, gt_boxes, gt_ignore in per_image:
        is_tp, is_ignored = match_image(det_boxes, det_scores, gt_boxes, gt_ignore, iou_threshold)
        kept = ~is_ignored
        scores.append(np.asarray(det_scores, dtype=np.float64).reshape(-1)[kept])
        tps.append(is_tp[kept])
        fps.append(~is_tp[kept])
        g = as_boxes(gt_boxes)
        n_gt += g.shape[0] if gt_ignore is None else int((~np.asarray(gt_ignore, bool)).sum())
        n_images += 1
    if n_gt == 0:
        raise InputError(f"no ground-truth face in {n_images} image(s): AP is undefined")
    s = np.concatenate(scores) if scores else np.zeros(0)
    order = np.argsort(-s, kind="stable")
    s = s[order]
    tp = np.cumsum(np.concatenate(tps)[order] if tps else np.zeros(0, bool))
    fp = np.cumsum(np.concatenate(fps)[order] if fps else np.zeros(0, bool))
    last_of_group = np.flatnonzero(np.append(s[1:] != s[:-1], True)) if s.size else np.zeros(0, int)
    tp, fp, thresholds = tp[last_of_group], fp[last_of_group], s[last_of_group]
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, 1)
    ap = average_precision(recall, precision) if s.size else 0.0
    return DetectionEval(ap, iou_threshold, n_gt, n_images, thresholds, tp, fp, precision, recall)


def _ap_of_matched(scores, tps, n_gt: int) -> float:
    """AP of already-matched detections (the tail of `evaluate`, no curves kept)."""
    s = np.concatenate(scores) if scores else np.zeros(0)
    if s.size == 0 or n_gt == 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    s = s[order]
    hit = np.concatenate(tps)[order]
    tp, fp = np.cumsum(hit), np.cumsum(~hit)
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    tp, fp = tp[last], fp[last]
    return average_precision(tp / n_gt, tp / np.maximum(tp + fp, 1))


def bootstrap_ap(per_image, iou_threshold: float = 0.5, n_boot: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of AP over pictures.

    Each of ``n_boot`` resamples draws as many pictures as there are, with replacement (a
    picture brings all its detections and faces), and recomputes AP as `evaluate` does;
    the interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those
    APs. Pictures are matched once; ``seed`` fixes NumPy's PCG64 generator, so the interval is
    reproducible.

    Args:
        per_image: as for `evaluate`.

    Returns:
        ``(low, high)``.

    Raises:
        InputError: no gt face, ``n_boot < 1`` or ``confidence`` outside (0, 1).
    """
    if n_boot < 1 or not 0.0 < confidence < 1.0:
        raise InputError(f"bootstrap needs n_boot >= 1 and 0 < confidence < 1; got {n_boot}, {confidence}")
    scores, tps, n_gts = [], [], []
    for det_boxes, det_scores, gt_boxes, gt_ignore in per_image:
        is_tp, is_ignored = match_image(det_boxes, det_scores, gt_boxes, gt_ignore, iou_threshold)
        kept = ~is_ignored
        scores.append(np.asarray(det_scores, dtype=np.float64).reshape(-1)[kept])
        tps.append(np.asarray(is_tp[kept], bool))
        n_gts.append(as_boxes(gt_boxes).shape[0] if gt_ignore is None else int((~np.asarray(gt_ignore, bool)).sum()))
    if sum(n_gts) == 0:
        raise InputError(f"no ground-truth face in {len(n_gts)} image(s): AP is undefined")
    rng = np.random.default_rng(seed)
    n = len(n_gts)
    aps = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, n, n)
        aps[b] = _ap_of_matched([scores[i] for i in pick], [tps[i] for i in pick], sum(n_gts[i] for i in pick))
    lo, hi = np.quantile(aps, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)
