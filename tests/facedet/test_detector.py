"""The pyramid detector with a fake network that plants known faces at every scale."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.errors import InputError
from qsim.facedet.coding import anchors, encode, pack_head
from qsim.facedet.detector import detect, detections_from_outputs, pyramid_sizes
from qsim.facedet.templates import load_templates
from qsim.images import mobilenet_preprocess

STRIDE = 16


class PlantedNet:
    """A stand-in network: for input (1, h, w, 3) of an (H, W) image it answers a stride-16
    map whose best anchor for each planted face (scaled to this input) carries the exact eq. (3)
    deltas and a logit of `logit_at[scale]`; every other cell-template has logit -8."""

    def __init__(self, image_hw, faces, logit_at):
        self.image_hw = image_hw
        self.faces = np.asarray(faces, float)
        self.logit_at = logit_at
        self.inputs = []

    def __call__(self, x):
        self._check(x)
        h, w = x.shape[1:3]
        fy, fx = h / self.image_hw[0], w / self.image_hw[1]
        return self.answer(h, w, np.array([fx, fy, fx, fy]), self.logit_at[round(fy * 2) / 2])

    def _check(self, x):
        assert x.dtype == np.float32 and x.ndim == 4 and x.shape[0] == 1
        assert x.min() >= -1.0 and x.max() <= 1.0
        self.inputs.append(x.shape)

    def answer(self, h, w, factor, logit):
        """The (1, h/16, w/16, 125) head output with each face, times ``factor``, planted."""
        oh, ow = -(-h // STRIDE), -(-w // STRIDE)
        anc = anchors(oh, ow, STRIDE, load_templates())
        logits = np.full((oh, ow, 25), -8.0)
        deltas = np.zeros((oh, ow, 25, 4))
        for face in self.faces:
            d = encode(face * factor, anc)
            err = np.abs(d).sum(axis=-1)
            i, j, t = np.unravel_index(np.argmin(err), err.shape)
            logits[i, j, t] = logit
            deltas[i, j, t] = d[i, j, t]
        return pack_head(logits, deltas)[None].astype(np.float32)


def test_pyramid_sizes():
    assert pyramid_sizes((100, 60)) == [(0.5, (50, 30)), (1.0, (100, 60)), (2.0, (200, 120))]
    assert pyramid_sizes((100, 60), (1.0, 2.0), max_side=100) == [(1.0, (100, 60))]  # 2x capped to 1x
    with pytest.raises(InputError):
        pyramid_sizes((10, 10), (0.0,))
    with pytest.raises(InputError):
        pyramid_sizes((10, 10), ())


def test_detect_maps_back_and_suppresses_duplicates():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (150, 201, 3)).astype(np.uint8)
    faces = [[20.0, 30.0, 80.0, 100.0], [120.0, 10.0, 170.0, 70.0]]
    net = PlantedNet(image.shape[:2], faces, {0.5: 1.0, 1.0: 3.0, 2.0: 2.0})
    det = detect(image, net, stride=STRIDE, score_threshold=0.5, nms_iou=0.3)
    assert net.inputs == [(1, 75, 100, 3), (1, 150, 201, 3), (1, 300, 402, 3)]
    # three scales found each face; NMS keeps one per face, the 1x copy (logit 3)
    assert len(det) == 2
    np.testing.assert_allclose(det.scores, 1 / (1 + np.exp(-3.0)))
    order = np.argsort(det.boxes[:, 0])
    np.testing.assert_allclose(det.boxes[order], faces, atol=1e-4)
    assert [r.scale for r in det.raw] == [0.5, 1.0, 2.0] and det.raw[2].output.shape == (19, 26, 125)
    # cached raw outputs re-decode to the same answer; a higher threshold keeps fewer boxes
    boxes, scores = detections_from_outputs(det.raw, image.shape[:2], stride=STRIDE, score_threshold=0.5)
    np.testing.assert_array_equal(boxes, det.boxes)
    np.testing.assert_array_equal(scores, det.scores)
    boxes, _ = detections_from_outputs(det.raw, image.shape[:2], stride=STRIDE, score_threshold=0.99)
    assert boxes.shape == (0, 4)


def test_detect_other_scales_map_back_exactly():
    image = np.full((128, 96, 3), 128, np.uint8)
    faces = [[10.0, 20.0, 60.0, 80.0]]
    net = PlantedNet(image.shape[:2], faces, {0.5: 4.0, 1.0: 0.0, 2.0: -1.0})
    det = detect(image, net, stride=STRIDE, score_threshold=0.6)
    assert len(det) == 1  # only the 0.5x answer passes 0.6
    np.testing.assert_allclose(det.boxes[0], faces[0], atol=1e-4)


def test_input_preprocessing_identity_at_1x():
    image = np.arange(32 * 32 * 3, dtype=np.uint32).reshape(32, 32, 3) % 256
    seen = {}

    def run(x):
        seen[x.shape[1]] = x
        return np.zeros((1, 2, 2, 125), np.float32)

    detect(image.astype(np.uint8), run, stride=16, score_threshold=0.5, scales=(1.0,))
    np.testing.assert_array_equal(seen[32][0], mobilenet_preprocess(image.astype(np.uint8)))


def test_bad_network_output():
    with pytest.raises(InputError, match="scale 1"):
        detect(np.zeros((32, 32, 3), np.uint8), lambda x: np.zeros((2, 2)), stride=16, score_threshold=0.5,
               scales=(1.0,))
    with pytest.raises(InputError, match="125"):
        detect(np.zeros((32, 32, 3), np.uint8), lambda x: np.zeros((1, 2, 2, 5)), stride=16,
               score_threshold=0.5, scales=(1.0,))
    with pytest.raises(InputError):
        detect(np.zeros((32, 32)), lambda x: x, stride=16, score_threshold=0.5)


def test_overflowed_head_output_still_gives_detections_issue17():
    """Issue 17 #12: the sweep path (candidates_from_outputs, as `qsim sweep` caches them) on an
    fp16 head output holding Inf: the finite cells decode, the overflowed ones are dropped."""
    from qsim.facedet.detector import ScaleOutput, candidates_from_outputs

    out = np.full((4, 4, 125), -10.0, np.float32)
    out[1, 1, 4] = 3.0                    # one real face
    out[2, 2, 0] = np.float32(np.inf)     # fp16 overflow of a logit
    out[0, 3, 25 + 6] = -np.float32(np.inf)  # and of a box delta
    boxes, scores = candidates_from_outputs([ScaleOutput(1.0, (64, 64), out)], (64, 64), stride=16,
                                            score_threshold=0.01)
    assert len(scores) == 1 and np.isfinite(boxes).all()


class LetterboxedNet(PlantedNet):
    """PlantedNet for a fixed input: faces are planted at the letterbox factor, not at the
    input/picture ratio (the canvas is larger than the resized picture)."""

    def __init__(self, image_hw, faces, logit, factor):
        super().__init__(image_hw, faces, {})
        self.logit, self.factor, self.seen = logit, factor, []

    def __call__(self, x):
        self._check(x)
        self.seen.append(x)
        return self.answer(x.shape[1], x.shape[2], self.factor, self.logit)


def test_fixed_input_letterboxes_and_maps_back():
    from qsim.facedet.detector import fixed_input_sizes
    from qsim.images import resize_bilinear

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (150, 201, 3)).astype(np.uint8)
    fit = min(224 / 150, 224 / 201)
    assert fixed_input_sizes(image.shape[:2], (224, 224)) == [(fit, (167, 224))]
    faces = [[20.0, 30.0, 80.0, 100.0]]
    # The resize is per axis (167/150 down, 224/201 across): so is the way back.
    net = LetterboxedNet(image.shape[:2], faces, 3.0, np.array([224 / 201, 167 / 150] * 2))
    det = detect(image, net, stride=STRIDE, score_threshold=0.5, scales=(1.0,), input_hw=(224, 224))
    (x,) = net.seen
    assert x.shape == (1, 224, 224, 3)
    np.testing.assert_array_equal(x[0, :167], mobilenet_preprocess(resize_bilinear(image, (167, 224))))
    assert not x[0, 167:].any()  # mid grey below the picture
    assert det.raw[0].input_hw == (167, 224)
    np.testing.assert_allclose(det.boxes, faces, atol=1e-4)
    # A scale above 1 is cut to the canvas: the network still sees 224x224.
    net2 = LetterboxedNet(image.shape[:2], faces, 3.0, 2 * fit)
    detect(image, net2, stride=STRIDE, score_threshold=0.5, scales=(2.0,), input_hw=(224, 224))
    assert net2.seen[0].shape == (1, 224, 224, 3)
    with pytest.raises(InputError, match="at least 1x1"):
        fixed_input_sizes((10, 10), (0, 224))
