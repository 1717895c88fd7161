"""Matching, AP (all-point, VOC 2010+), PR curve and FDDB discrete ROC on hand-made cases."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qsim.errors import InputError
from qsim.facedet.metrics import average_precision, evaluate, match_image


def test_perfect_detector_has_ap_one():
    gts = [np.array([[0, 0, 10, 10], [20, 20, 40, 40]]), np.array([[5, 5, 15, 15]])]
    per_image = [(g, np.linspace(0.9, 0.5, len(g)), g, None) for g in gts]
    e = evaluate(per_image)
    assert e.ap == 1.0 and e.n_gt == 3 and e.recall[-1] == 1.0 and e.fp[-1] == 0
    assert e.tpr_at_fp(0) == 1.0


def test_small_case_by_hand():
    # 3 gt faces in 2 images; 5 detections ranked by score:
    #   0.9 TP, 0.8 FP, 0.7 TP, 0.6 FP, 0.5 FP (duplicate of a matched face)
    # PR points: (1/3, 1), (1/3, 1/2), (2/3, 2/3), (2/3, 1/2), (2/3, 2/5)
    # envelope AP = 1/3 * 1 + 1/3 * 2/3 = 5/9
    g1 = [[0, 0, 10, 10], [100, 100, 120, 120]]
    g2 = [[0, 0, 50, 50]]
    d1 = ([[0, 0, 10, 10], [60, 60, 70, 70], [1, 1, 10, 10]], [0.9, 0.8, 0.5])
    d2 = ([[2, 0, 52, 50], [200, 200, 210, 210]], [0.7, 0.6])
    e = evaluate([(d1[0], d1[1], g1, None), (d2[0], d2[1], g2, None)])
    assert e.ap == pytest.approx(5 / 9, abs=1e-12)
    np.testing.assert_allclose(e.precision, [1, 1 / 2, 2 / 3, 1 / 2, 2 / 5])
    np.testing.assert_allclose(e.recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert e.fp.tolist() == [0, 1, 1, 2, 3]
    assert e.tpr_at_fp(0) == pytest.approx(1 / 3)
    assert e.tpr_at_fp(1) == pytest.approx(2 / 3)
    d = e.to_dict(points=3)
    assert d["n_detections"] == 5 and d["n_gt"] == 3 and len(d["curve"]["recall"]) == 3


def test_tied_scores_enter_together():
    # two detections at the same score, one TP and one FP: one PR point (1/2 recall, 1/2 precision)
    e = evaluate([([[0, 0, 10, 10], [50, 50, 60, 60]], [0.5, 0.5], [[0, 0, 10, 10], [80, 80, 90, 90]], None)])
    assert e.thresholds.tolist() == [0.5] and e.precision.tolist() == [0.5]
    assert e.ap == pytest.approx(0.25)
    swapped = evaluate([([[50, 50, 60, 60], [0, 0, 10, 10]], [0.5, 0.5], [[0, 0, 10, 10], [80, 80, 90, 90]], None)])
    assert swapped.ap == e.ap


def test_matching_rules():
    gt = [[0, 0, 10, 10], [6, 0, 16, 10]]
    # the first det overlaps both gts; it takes the best one (gt 1, IoU 1); the second det then
    # takes gt 0 (IoU 0.67) even though gt 1 is its best: greedy over unmatched gts
    tp, ign = match_image([[6, 0, 16, 10], [2, 0, 12, 10]], [0.9, 0.8], gt)
    assert tp.tolist() == [True, True] and not ign.any()
    # IoU exactly 0.5 counts
    tp, _ = match_image([[0, 0, 20, 10]], [1.0], [[0, 0, 10, 10]])
    assert tp.tolist() == [True]
    tp, _ = match_image([[0, 0, 20.01, 10]], [1.0], [[0, 0, 10, 10]])
    assert tp.tolist() == [False]


def test_ignored_gt_neither_required_nor_penalised():
    gt = [[0, 0, 10, 10], [50, 50, 60, 60]]
    e = evaluate([([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.95], gt, [False, True])])
    assert e.n_gt == 1 and e.ap == 1.0 and e.fp[-1] == 0
    tp, ign = match_image([[50, 50, 60, 60]], [0.9], gt, [False, True])
    assert ign.tolist() == [True] and tp.tolist() == [False]


def test_no_detections_and_no_gt():
    e = evaluate([(np.zeros((0, 4)), np.zeros(0), [[0, 0, 1, 1]], None)])
    assert e.ap == 0.0 and e.tpr_at_fp(10) == 0.0
    with pytest.raises(InputError, match="no ground-truth"):
        evaluate([(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 4)), None)])
    with pytest.raises(InputError, match="scores"):
        match_image([[0, 0, 1, 1]], [0.1, 0.2], [[0, 0, 1, 1]])


def _slow_ap(is_tp_sorted, n_gt):
    """All-point AP with Fractions: sum over each TP of (1/n_gt) * max precision at recall >= it."""
    tp = fp = 0
    points = []
    for hit in is_tp_sorted:
        tp += hit
        fp += not hit
        points.append((Fraction(tp, n_gt), Fraction(tp, tp + fp)))
    total = Fraction(0)
    for k in range(1, tp + 1):
        r = Fraction(k, n_gt)
        total += Fraction(1, n_gt) * max(p for rr, p in points if rr >= r)
    return total


@given(st.lists(st.booleans(), max_size=40), st.integers(0, 10))
def test_ap_matches_fraction_reference(hits, extra_gt):
    n_gt = sum(hits) + extra_gt
    if n_gt == 0:
        return
    # distinct scores, one detection per image, each TP on its own gt box
    per_image = []
    for k, hit in enumerate(hits):
        gt = [[0, 0, 10, 10]]
        det = [[0, 0, 10, 10]] if hit else [[50, 50, 60, 60]]
        per_image.append((det, [1.0 - k / 100], gt if hit else np.zeros((0, 4)), None))
    per_image.append((np.zeros((0, 4)), np.zeros(0), [[0, 0, 1, 1]] * extra_gt or np.zeros((0, 4)), None))
    e = evaluate(per_image)
    assert e.n_gt == n_gt
    assert e.ap == pytest.approx(float(_slow_ap(hits, n_gt)), abs=1e-12)


def test_average_precision_monotone_envelope():
    assert average_precision([], []) == 0.0
    assert average_precision([1.0], [1.0]) == 1.0
    assert average_precision([0.5, 1.0], [0.5, 1.0]) == 1.0  # envelope lifts the first step


def test_bootstrap_ap_seeded_and_brackets_ap():
    from qsim.facedet.metrics import bootstrap_ap

    rng = np.random.default_rng(3)
    per_image = []
    for _ in range(30):
        gt = np.array([[0.0, 0.0, 10.0, 10.0]])
        hit = rng.random() < 0.7
        det = gt + (0.0 if hit else 50.0)
        per_image.append((det, rng.random(1), gt, None))
    ap = evaluate(per_image).ap
    lo, hi = bootstrap_ap(per_image, n_boot=200, seed=1)
    assert lo <= ap <= hi and lo < hi
    assert bootstrap_ap(per_image, n_boot=200, seed=1) == (lo, hi)
    # one picture: every resample is that picture
    one = bootstrap_ap(per_image[:1], n_boot=5)
    assert one[0] == one[1] == evaluate(per_image[:1]).ap
    with pytest.raises(InputError, match="n_boot >= 1"):
        bootstrap_ap(per_image, n_boot=0)
