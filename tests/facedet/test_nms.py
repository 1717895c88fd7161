"""Greedy NMS against a plain-Python reference and on hand-made cases."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qsim.errors import InputError
from qsim.facedet.boxes import iou_matrix
from qsim.facedet.nms import nms


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _slow_nms(boxes, scores, thr):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if all(_iou(boxes[i], boxes[k]) <= thr for k in keep):
            keep.append(i)
    return keep


def test_hand_made():
    boxes = [
        [0, 0, 10, 10],    # 0: best
        [0, 0, 10, 12],    # 1: IoU 100/120 = 0.83 with 0 -> gone
        [7, 0, 17, 10],    # 2: IoU 30/170 = 0.18 with 0 -> kept
        [50, 50, 60, 60],  # 3: alone
        [8, 0, 18, 10],    # 4: IoU 90/110 with 2 -> gone
    ]
    scores = [0.9, 0.8, 0.7, 0.1, 0.6]
    assert nms(boxes, scores, 0.3).tolist() == [0, 2, 3]
    assert nms(boxes, scores, 0.1).tolist() == [0, 3]
    assert nms(boxes, scores, 0.3, max_keep=2).tolist() == [0, 2]
    # IoU exactly at the threshold is kept (suppress only when > threshold)
    assert nms([[0, 0, 2, 1], [1, 0, 3, 1]], [1.0, 0.5], 1 / 3).tolist() == [0, 1]


def test_ties_keep_lower_index_and_empty():
    assert nms([[0, 0, 10, 10], [0, 0, 10, 10]], [0.5, 0.5]).tolist() == [0]
    assert nms(np.zeros((0, 4)), np.zeros(0)).tolist() == []


def test_errors():
    with pytest.raises(InputError, match="scores"):
        nms([[0, 0, 1, 1]], [0.1, 0.2])
    with pytest.raises(InputError, match="IoU"):
        nms([[0, 0, 1, 1]], [0.1], 1.5)
    with pytest.raises(InputError, match="NaN"):
        nms([[0, 0, 1, 1]], [np.nan])


boxes_st = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(1, 15), st.integers(1, 15), st.integers(0, 5)),
    min_size=0, max_size=25,
)


@given(boxes_st, st.sampled_from([0.0, 0.3, 0.5, 0.7]))
def test_matches_reference(raw, thr):
    boxes = [[x, y, x + w, y + h] for x, y, w, h, _ in raw]
    scores = [s / 5 for *_, s in raw]  # few distinct values: many ties
    assert nms(np.array(boxes).reshape(-1, 4), scores, thr).tolist() == _slow_nms(boxes, scores, thr)


@given(boxes_st, boxes_st)
def test_iou_matrix_matches_reference(ra, rb):
    a = [[x, y, x + w, y + h] for x, y, w, h, _ in ra]
    b = [[x, y, x + w, y + h] for x, y, w, h, _ in rb]
    got = iou_matrix(np.array(a).reshape(-1, 4), np.array(b).reshape(-1, 4))
    assert got.shape == (len(a), len(b))
    for i in range(len(a)):
        for j in range(len(b)):
            assert got[i, j] == pytest.approx(_iou(a[i], b[j]), abs=1e-12)
