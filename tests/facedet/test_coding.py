"""Templates, anchors, eq. (3) box coding, label assignment, head decoding."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qsim.errors import InputError
from qsim.facedet.coding import (
    anchors,
    assign,
    decode,
    decode_deltas,
    encode,
    head_channels,
    pack_head,
    sigmoid,
    split_head,
)
from qsim.facedet.templates import load_templates


def test_bundled_templates_equal_shared_copy(data_dir):
    shared = json.loads((data_dir / "tinyface_templates.json").read_text())
    np.testing.assert_array_equal(load_templates(), np.asarray(shared))


def test_templates_are_centred_and_25():
    t = load_templates()
    assert t.shape == (25, 4) and head_channels(25) == 125
    np.testing.assert_allclose(t[:, 0], -t[:, 2])
    np.testing.assert_allclose(t[:, 1], -t[:, 3])


def test_load_templates_errors(tmp_path):
    (tmp_path / "bad.json").write_text("[[1, 2, 3]]")
    with pytest.raises(InputError, match="bad.json"):
        load_templates(tmp_path / "bad.json")
    (tmp_path / "empty.json").write_text("[[0, 0, 0, 5]]")
    with pytest.raises(InputError, match="empty"):
        load_templates(tmp_path / "empty.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(InputError, match="junk.json"):
        load_templates(tmp_path / "junk.json")


def test_anchor_centres_follow_the_cell_convention():
    tpl = load_templates()
    a = anchors(3, 4, 16, tpl)
    assert a.shape == (3, 4, 25, 4)
    # cell (2, 1): centre x = 1.5*16 = 24, y = 2.5*16 = 40
    np.testing.assert_allclose((a[2, 1, :, 0] + a[2, 1, :, 2]) / 2, 24.0)
    np.testing.assert_allclose((a[2, 1, :, 1] + a[2, 1, :, 3]) / 2, 40.0)
    np.testing.assert_allclose(a[2, 1, 7, 2] - a[2, 1, 7, 0], tpl[7, 2] - tpl[7, 0])


def test_encode_by_hand():
    # anchor centre (24, 40), size 32 x 48; box centre (28, 34), size 64 x 24
    anchor = [8.0, 16.0, 40.0, 64.0]
    box = [-4.0, 22.0, 60.0, 46.0]
    tx, ty, tw, th = encode([box], [anchor])[0]
    assert tx == pytest.approx((28 - 24) / 32)
    assert ty == pytest.approx((34 - 40) / 48)
    assert tw == pytest.approx(math.log(64 / 32))
    assert th == pytest.approx(math.log(24 / 48))
    np.testing.assert_allclose(decode_deltas([[tx, ty, tw, th]], [anchor])[0], box)


box_side = st.floats(0.5, 400.0)
coord = st.floats(-500.0, 500.0)


ratio = st.floats(1 / 60, 60.0)  # inside decode_deltas' clamp of log(1000/16) = log(62.5)


@given(coord, coord, ratio, ratio, coord, coord, box_side, box_side)
def test_encode_decode_round_trip(x1, y1, rw, rh, ax, ay, aw, ah):
    w, h = rw * aw, rh * ah
    box = np.array([x1, y1, x1 + w, y1 + h])
    anc = np.array([ax, ay, ax + aw, ay + ah])
    np.testing.assert_allclose(decode_deltas(encode(box, anc), anc), box, rtol=0, atol=1e-9 * 1000)


def test_encode_broadcasts_and_rejects_empty_boxes():
    anc = anchors(2, 2, 16, load_templates())
    d = encode(np.array([10.0, 10.0, 50.0, 60.0]), anc)
    assert d.shape == (2, 2, 25, 4)
    with pytest.raises(InputError, match="box"):
        encode([[0, 0, 0, 5]], [[0, 0, 5, 5]])
    with pytest.raises(InputError, match="anchor"):
        encode([[0, 0, 5, 5]], [[0, 0, 5, 0]])


def test_decode_clamps_log_ratio():
    b = decode_deltas([[0, 0, 1e6, 1e6]], [[0, 0, 10, 10]])
    np.testing.assert_allclose(b[0], [5 - 312.5, 5 - 312.5, 5 + 312.5, 5 + 312.5])


def test_split_and_pack_are_inverse():
    out = np.random.default_rng(1).normal(size=(3, 4, 125))
    logits, deltas = split_head(out)
    assert logits.shape == (3, 4, 25) and deltas.shape == (3, 4, 25, 4)
    # template t, delta k at channel 25 + 25 k + t
    assert deltas[1, 2, 6, 3] == out[1, 2, 25 + 75 + 6]
    np.testing.assert_array_equal(pack_head(logits, deltas), out)
    with pytest.raises(InputError, match="125"):
        split_head(np.zeros((2, 2, 124)))


def test_sigmoid_stable():
    s = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    assert s.tolist() == [0.0, 0.5, 1.0]


def test_assign_hand_made():
    tpl = np.array([[-8.0, -8.0, 8.0, 8.0], [-16.0, -16.0, 16.0, 16.0]])
    anc = anchors(2, 2, 16, tpl)  # centres (8,8), (24,8), (8,24), (24,24)
    # gt 0 = anchor t0 at cell (0,0) exactly (IoU 1). gt 1 = a 20x20 box centred at (24,24):
    #   t0 at (1,1) = [16,16,32,32] lies inside it: IoU 256/400 = 0.64 < 0.7, but it is gt 1's
    #   best anchor, so positive; t1 at (1,1) = [8,8,40,40] contains it: IoU 400/1024 = 0.39 -> ignore.
    #   t1 at (0,0) = [-8,-8,24,24]: IoU with gt 0 = 256/1024 = 0.25, with gt 1 = 100/1324 -> negative.
    gt = np.array([[0.0, 0.0, 16.0, 16.0], [14.0, 14.0, 34.0, 34.0]])
    labels, matched = assign(gt, anc, pos_iou=0.7, neg_iou=0.3)
    assert labels.shape == (2, 2, 2) and labels.dtype == np.int8
    assert labels[0, 0, 0] == 1 and matched[0, 0, 0] == 0
    assert labels[1, 1, 0] == 1 and matched[1, 1, 0] == 1
    assert labels[1, 1, 1] == -1 and matched[1, 1, 1] == 1
    assert labels[0, 0, 1] == 0 and matched[0, 0, 1] == 0
    # t0 at (0,1) = [16,0,32,16]: IoU with gt 1 = 32/624, with gt 0 = 0 -> negative
    assert labels[0, 1, 0] == 0
    assert (labels == 1).sum() == 2
    # with a lower pos_iou the 0.39 anchor becomes positive too
    labels, _ = assign(gt, anc, pos_iou=0.35, neg_iou=0.3)
    assert labels[1, 1, 1] == 1


def test_assign_without_gt_is_all_negative():
    anc = anchors(3, 3, 16, load_templates())
    labels, matched = assign(np.zeros((0, 4)), anc)
    assert (labels == 0).all() and (matched == -1).all()
    with pytest.raises(InputError):
        assign(np.zeros((1, 4)), anc, pos_iou=0.2, neg_iou=0.5)


def test_assign_shared_best_anchor_goes_to_higher_iou():
    tpl = np.array([[-8.0, -8.0, 8.0, 8.0]])
    anc = anchors(1, 1, 16, tpl)  # one anchor 0..16
    gt = np.array([[0.0, 0.0, 16.0, 12.0], [0.0, 0.0, 8.0, 8.0]])  # IoU 0.75 and 0.25
    labels, matched = assign(gt, anc)
    assert labels[0, 0, 0] == 1 and matched[0, 0, 0] == 0
    gt2 = gt[::-1]
    labels, matched = assign(gt2, anc)
    assert matched[0, 0, 0] == 1


def test_decode_head_output():
    tpl = load_templates()
    logits = np.full((2, 3, 25), -10.0)
    deltas = np.zeros((2, 3, 25, 4))
    logits[1, 2, 4] = 2.0     # one confident detection, anchor exactly
    logits[0, 0, 9] = 0.5     # a weaker one with a shift of +0.5 wa in x and 2x height
    deltas[0, 0, 9] = [0.5, 0.0, 0.0, math.log(2.0)]
    out = pack_head(logits, deltas)
    boxes, scores = decode(out[None], 16, tpl, score_threshold=0.5)
    assert boxes.shape == (2, 4)
    np.testing.assert_allclose(scores, [sigmoid(2.0), sigmoid(0.5)])
    np.testing.assert_allclose(boxes[0], tpl[4] + [40, 24, 40, 24])
    w9, h9 = tpl[9, 2] - tpl[9, 0], tpl[9, 3] - tpl[9, 1]
    np.testing.assert_allclose(boxes[1], [8 + 0.5 * w9 - w9 / 2, 8 - h9, 8 + 0.5 * w9 + w9 / 2, 8 + h9])
    empty_boxes, empty_scores = decode(out, 16, tpl, score_threshold=0.99)
    assert empty_boxes.shape == (0, 4) and empty_scores.shape == (0,)
    counts: dict = {}
    boxes, scores = decode(np.full((1, 1, 125), np.nan), 16, counts=counts)
    assert boxes.shape == (0, 4) and counts == {"non_finite": 25}


def test_decode_non_finite_cells_are_no_detection_issue17():
    """Issue 17 #12: fp16 overflow to Inf in the head output aborted `run` and `sweep`; now the
    cell-templates holding NaN/Inf are no detection, counted, and the rest decode as before."""
    tpl = load_templates()
    logits = np.full((2, 3, 25), -10.0)
    deltas = np.zeros((2, 3, 25, 4))
    logits[0, 0, 4] = 2.0             # a good detection
    logits[0, 1, 4] = np.inf          # overflowed logit: sigmoid would say 1.0
    logits[1, 2, 7] = 3.0
    deltas[1, 2, 7, 0] = np.inf       # a confident score with an infinite box
    logits[1, 0, 3] = np.nan
    out = pack_head(logits, deltas)
    counts: dict = {}
    boxes, scores = decode(out, 16, tpl, score_threshold=0.5, counts=counts)
    assert counts == {"non_finite": 3}
    assert np.isfinite(boxes).all() and len(scores) == 1
    np.testing.assert_allclose(scores, [sigmoid(2.0)])
    logits[0, 1, 4] = logits[1, 2, 7] = logits[1, 0, 3] = -10.0  # the same head without them
    deltas[1, 2, 7, 0] = 0.0
    clean_boxes, _ = decode(pack_head(logits, deltas), 16, tpl, score_threshold=0.5)
    np.testing.assert_allclose(boxes, clean_boxes)
    decode(out, 16, tpl)  # without a counts dict: no error either


def test_run_prints_the_non_finite_count():
    from qsim.cli.run import detections

    out = np.full((1, 2, 2, 125), -10.0)
    out[0, 0, 0, 0] = np.inf
    counts: dict = {}
    dets = detections(out, (32, 32), (32, 32), counts=counts)
    assert dets == [] and counts["non_finite"] == 1
