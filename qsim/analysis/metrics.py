"""Task metrics of `qsim eval`, per sample so that bootstrap intervals resample samples.

A metric is ``f(out, ref, x, y) -> float`` on arrays whose first axis is the sample:
``out`` the format's output 0, ``ref`` the float model's, ``x`` the input, ``y`` the labels
(None without). `METRICS` is the table; `default_metric` picks one from the labels.

==============  =====================================================================
``top1``        accuracy: argmax of the output (flattened per sample) == label; labels
                are class indices (N,) or one-hot / probabilities (N, C)
``top5``        the label is among the 5 largest outputs
``mse``         mean squared error against ``y`` (same shape as the output), or against
                the input itself when there are no labels (an autoencoder)
``auc``         ROC AUC of a binary label (N,) in {0, 1}; the score is the output for one
                output, the second output for two (softmax), and the per-sample mean
                squared reconstruction error when the output has the input's shape (the
                MLPerf Tiny anomaly-detection score); ties count one half (Mann-Whitney)
``agreement``   against the float model, no labels needed: top-1 agreement for a
                classifier (one vector of C > 1 scores per sample), else output SQNR in dB
                (``10 log10(sum ref^2 / sum (out - ref)^2)``, inf when identical)
``sqnr``        output SQNR in dB against the float model, for any model
==============  =====================================================================

`bootstrap_interval` resamples the samples (the same resamples for every format: paired)
and returns the 95 % percentile interval.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qsim.errors import InputError

Metric = Callable[[np.ndarray, np.ndarray, np.ndarray, "np.ndarray | None"], float]


def _flat(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float64).reshape(len(a), -1)


def _class_labels(y: np.ndarray | None, n_classes: int, metric: str) -> np.ndarray:
    if y is None:
        raise InputError(f"metric {metric} needs labels (--y KEY)")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == n_classes:  # one-hot or probabilities
        return np.argmax(y, axis=1)
    if y.ndim != 1 or (y.dtype.kind not in "iub" and not np.all(np.mod(y, 1) == 0)):
        raise InputError(f"metric {metric}: labels must be class indices (N,) or one-hot (N, {n_classes}); "
                         f"got shape {y.shape} dtype {y.dtype}")
    labels = y.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise InputError(f"metric {metric}: labels span {labels.min()}..{labels.max()}, the model has "
                         f"{n_classes} outputs")
    return labels


def top_k(k: int) -> Metric:
    def metric(out, ref, x, y) -> float:
        scores = _flat(out)
        labels = _class_labels(y, scores.shape[1], f"top{k}")
        if k == 1:
            return float(np.mean(np.argmax(scores, axis=1) == labels))
        # the label's rank: how many outputs are strictly larger (ties resolved in its favour)
        rank = np.sum(scores > scores[np.arange(len(labels)), labels][:, None], axis=1)
        return float(np.mean(rank < k))

    return metric


def mse(out, ref, x, y) -> float:
    target = x if y is None else y
    if np.shape(target) != np.shape(out):
        raise InputError(f"metric mse: output {np.shape(out)} and target {np.shape(target)} differ "
                         f"({'the input' if y is None else 'labels'})")
    return float(np.mean((np.asarray(out, np.float64) - np.asarray(target, np.float64)) ** 2))


def _binary_scores(out: np.ndarray, x: np.ndarray) -> np.ndarray:
    if np.shape(out) == np.shape(x):  # reconstruction error as the anomaly score
        return np.mean(_flat(out - np.asarray(x, np.float64)) ** 2, axis=1)
    flat = _flat(out)
    if flat.shape[1] == 1:
        return flat[:, 0]
    if flat.shape[1] == 2:
        return flat[:, 1]
    raise InputError(f"metric auc: output of {flat.shape[1]} values per sample; auc needs 1, 2 or the input's shape")


def auc(out, ref, x, y) -> float:
    if y is None:
        raise InputError("metric auc needs binary labels (--y KEY)")
    y = np.asarray(y).reshape(-1)
    if not np.all((y == 0) | (y == 1)):
        raise InputError(f"metric auc: labels must be 0 or 1; got values {np.unique(y)[:5]}")
    scores = _binary_scores(out, x)
    pos, neg = scores[y == 1], scores[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")  # undefined on a resample with one class only
    order = np.sort(neg)
    below = np.searchsorted(order, pos, side="left")
    ties = np.searchsorted(order, pos, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (len(pos) * len(neg)))


def is_classifier(out_shape: tuple, x_shape: tuple | None = None) -> bool:
    """Outputs of one vector per sample, (N, C) or (N, 1, ..., 1, C) with C > 1, are class
    scores - unless they are shaped like the input (an autoencoder, e.g. MLPerf Tiny's ad01)."""
    if x_shape is not None and tuple(out_shape[1:]) == tuple(x_shape[1:]):
        return False
    return len(out_shape) >= 2 and out_shape[-1] > 1 and int(np.prod(out_shape[1:-1])) == 1


def agreement(out, ref, x, y) -> float:
    if is_classifier(np.shape(ref), None if x is None else np.shape(x)):
        return float(np.mean(np.argmax(_flat(out), axis=1) == np.argmax(_flat(ref), axis=1)))
    return sqnr_db(out, ref)


def sqnr_db(out, ref) -> float:
    err = float(np.sum((np.asarray(out, np.float64) - np.asarray(ref, np.float64)) ** 2))
    signal = float(np.sum(np.asarray(ref, np.float64) ** 2))
    if err == 0:
        return float("inf")
    return float(10 * np.log10(signal / err)) if signal > 0 else float("-inf")


def sqnr(out, ref, x, y) -> float:
    return sqnr_db(out, ref)


METRICS: dict[str, Metric] = {"top1": top_k(1), "top5": top_k(5), "mse": mse, "auc": auc, "agreement": agreement,
                              "sqnr": sqnr}
HIGHER_IS_BETTER = {"top1": True, "top5": True, "mse": False, "auc": True, "agreement": True, "sqnr": True}


def default_metric(out_shape: tuple, x_shape: tuple, y: np.ndarray | None) -> str:
    """``agreement`` without labels; ``mse`` for real-valued labels shaped like the output
    (one-hot rows are class labels); ``auc`` for 0/1 labels of a one-score or reconstructing
    model; else ``top1``."""
    if y is None:
        return "agreement"
    y = np.asarray(y)
    one_hot = y.ndim == 2 and np.all(np.isin(y, (0, 1))) and np.all(y.sum(axis=1) == 1)
    if y.shape == tuple(out_shape) and not one_hot:
        return "mse"
    per_sample = int(np.prod(out_shape[1:]))
    if y.ndim == 1 and np.all(np.isin(y, (0, 1))) and (per_sample == 1 or tuple(out_shape) == tuple(x_shape)):
        return "auc"
    return "top1"


def bootstrap_interval(metric: Metric, out, ref, x, y, n_boot: int, seed: int = 0) -> tuple[float, float] | None:
    """95 % percentile interval of ``metric`` over ``n_boot`` resamples of the samples (seeded)."""
    if n_boot <= 0:
        return None
    rng = np.random.default_rng(seed)
    n = len(out)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        values.append(metric(out[idx], ref[idx], x[idx], None if y is None else np.asarray(y)[idx]))
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if not values.size:
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)
