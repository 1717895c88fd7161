"""YOLOv2 region-layer decoding of the Kendryte demos (``region_layer.c``), for kmodel v3 detectors.

The facts (kendryte-standalone-demo, ``face_detect/region_layer.c`` and ``main.c``; the same
code in ``kpu/``): the network output is float32 NCHW with, per anchor ``n``, the planes
``tx, ty, tw, th, objectness, class_0 .. class_{K-1}`` of an ``H x W`` grid (K = C/5 - 5,
the demo's formula for 5 anchors). Then, in float32:

* ``x = (col + sigmoid(tx)) / W``, ``y = (row + sigmoid(ty)) / H``,
  ``w = expf(tw) * anchor_w / W``, ``h = expf(th) * anchor_h / H`` (fractions of the image);
* class probabilities: softmax over the K classes of each cell and anchor (max = the first
  class); ``prob_k = sigmoid(objectness) * p_k``, zeroed unless ``> threshold``;
* NMS per class: boxes by decreasing ``prob_k``, each non-zero one zeroes the later ones
  whose IoU (centre-size form) is ``> nms``; ties in ``prob_k`` keep box order (qsort
  leaves them unspecified);
* a box is reported with its first highest class if that ``prob > threshold``, as the corners
  ``x*Wimg -+ w*Wimg/2``, ``y*Himg -+ h*Himg/2`` of the network input (320x240 in the demos,
  where the demo's ``correct_region_boxes`` is the identity). `decode` then scales them to
  the original picture, which the caller resized (not letterboxed) to the network input.

`FACE_DETECT` and `YOLO_VOC` are the demos' settings (anchors, threshold 0.7, NMS 0.3).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qsim.errors import InputError
from qsim.k210 import kmodel_v3_ops as ops

F32 = np.float32

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


@dataclass(frozen=True)
class RegionConfig:
    """One demo's decode settings: anchors in grid cells (w, h), thresholds, the network input size."""

    anchors: tuple[tuple[float, float], ...]
    threshold: float = 0.7
    nms: float = 0.3
    net_wh: tuple[int, int] = (320, 240)
    class_names: tuple[str, ...] = ("face",)


FACE_DETECT = RegionConfig(anchors=((1.889, 2.5245), (2.9465, 3.94056), (3.99987, 5.3658), (5.155437, 6.92275),
                                    (6.718375, 9.01025)))
YOLO_VOC = RegionConfig(anchors=((1.08, 1.19), (3.42, 4.41), (6.63, 11.38), (9.42, 5.11), (16.62, 10.52)),
                        class_names=VOC_CLASSES)


@dataclass
class RegionDetections:
    """Detections: ``boxes`` (N, 4) x1y1x2y2 in original-image pixels, ``scores`` (N,), ``classes`` (N,)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.size)


def _softmax_classes(v: np.ndarray) -> np.ndarray:
    """region_layer.c ``softmax`` over axis 0 (classes): max, expf(diff), running sum, divide."""
    largest = v.max(axis=0)
    e = np.exp((v - largest).astype(np.float32).astype(np.float64)).astype(np.float32)
    s = np.zeros(v.shape[1:], np.float32)
    for k in range(v.shape[0]):  # the C sums the classes in order
        s = (s + e[k]).astype(np.float32)
    return (e / s).astype(np.float32)


def _iou_one(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """box_iou of box a (x, y, w, h) against boxes b (M, 4), centre-size form, float32."""
    two = F32(2)

    def overlap(x1, w1, x2, w2):
        left = np.maximum(x1 - w1 / two, x2 - w2 / two)
        right = np.minimum(x1 + w1 / two, x2 + w2 / two)
        return (right - left).astype(np.float32)

    w = overlap(a[0], a[2], b[:, 0], b[:, 2])
    h = overlap(a[1], a[3], b[:, 1], b[:, 3])
    inter = np.where((w < 0) | (h < 0), F32(0), w * h).astype(np.float32)
    union = (a[2] * a[3] + b[:, 2] * b[:, 3] - inter).astype(np.float32)
    with np.errstate(all="ignore"):
        return (inter / union).astype(np.float32)


def region_boxes(output: np.ndarray, grid_hw: tuple[int, int], config: RegionConfig,
                 threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (A*H*W, 4) as (x, y, w, h) fractions and probs (A*H*W, K) after threshold and NMS."""
    gh, gw = grid_hw
    na = len(config.anchors)
    out = np.asarray(output, np.float32).reshape(-1)
    per = out.size // (na * gh * gw) if gh * gw else 0
    k = per - 5
    if k < 1 or out.size != na * gh * gw * per:
        raise InputError(f"region output of {out.size} floats does not split into {na} anchors x (5 + classes) "
                         f"x {gh}x{gw}")
    thr = F32(config.threshold if threshold is None else threshold)
    t = out.reshape(na, per, gh, gw)
    sx, sy, obj = ops.logistic(t[:, 0]), ops.logistic(t[:, 1]), ops.logistic(t[:, 4])
    probs_k = _softmax_classes(np.moveaxis(t[:, 5:], 1, 0))  # (K, A, H, W)
    anchors = np.asarray(config.anchors, np.float32)
    col = np.arange(gw, dtype=np.float32)[None, None, :]
    row = np.arange(gh, dtype=np.float32)[None, :, None]
    with np.errstate(over="ignore"):
        bx = ((col + sx) / F32(gw)).astype(np.float32)
        by = ((row + sy) / F32(gh)).astype(np.float32)
        ew = np.exp(t[:, 2].astype(np.float64)).astype(np.float32)
        eh = np.exp(t[:, 3].astype(np.float64)).astype(np.float32)
        bw = (ew * anchors[:, 0, None, None] / F32(gw)).astype(np.float32)
        bh = (eh * anchors[:, 1, None, None] / F32(gh)).astype(np.float32)
    boxes = np.stack([bx, by, bw, bh], axis=-1).reshape(-1, 4)
    prob = (obj[None] * probs_k).astype(np.float32).reshape(k, -1).T.copy()  # (A*H*W, K)
    prob[~(prob > thr)] = 0
    nms_thr = F32(config.nms)
    for c in range(k):
        cand = np.flatnonzero(prob[:, c])
        cand = cand[np.argsort(-prob[cand, c], kind="stable")]
        for i, bi in enumerate(cand):
            if prob[bi, c] == 0:
                continue
            rest = cand[i + 1:]
            if rest.size:
                prob[rest[_iou_one(boxes[bi], boxes[rest]) > nms_thr], c] = 0
    return boxes, prob


def decode(output: np.ndarray, grid_hw: tuple[int, int], config: RegionConfig = FACE_DETECT,
           image_wh: tuple[int, int] | None = None, threshold: float | None = None) -> RegionDetections:
    """Detections of one region output, in the pixels of an ``image_wh`` picture (default: the net input).

    Args:
        output: the float32 region tensor (anchors * (5 + classes), H, W), any shape of that size.
        grid_hw: (H, W) of the grid (15, 20 for the face detector at 320x240).
        config: anchors and thresholds (`FACE_DETECT`, `YOLO_VOC`).
        image_wh: (width, height) of the original picture; boxes are scaled from the net input.
        threshold: overrides ``config.threshold`` (a lower one gives a full precision/recall curve;
            the detections above the demo's threshold are the same either way).
    """
    thr = F32(config.threshold if threshold is None else threshold)
    boxes, prob = region_boxes(output, grid_hw, config, threshold)
    cls = np.argmax(prob, axis=1)  # first maximum, as max_index
    best = prob[np.arange(prob.shape[0]), cls]
    keep = np.flatnonzero(best > thr)
    nw, nh = (F32(v) for v in config.net_wh)
    b = boxes[keep]
    x1 = b[:, 0] * nw - b[:, 2] * nw / F32(2)
    y1 = b[:, 1] * nh - b[:, 3] * nh / F32(2)
    x2 = b[:, 0] * nw + b[:, 2] * nw / F32(2)
    y2 = b[:, 1] * nh + b[:, 3] * nh / F32(2)
    px = np.stack([x1, y1, x2, y2], axis=1).astype(np.float64)
    if image_wh is not None:
        px *= np.array([image_wh[0] / config.net_wh[0], image_wh[1] / config.net_wh[1]] * 2)
    return RegionDetections(px, best[keep].astype(np.float64), cls[keep].astype(np.int64))


class RegionDetector:
    """A kmodel v3 region detector on whole pictures: resize to the net input, run, decode.

    The picture is resized (half-pixel bilinear, rounded to uint8 RGB planes, as
    `qsim.facedet.ultraface.image_to_input`) to ``config.net_wh``; boxes come back in the
    picture's pixels. The grid is the last K210_CONV layer's output size.

    >>> # det = RegionDetector("detect.kmodel"); found = det(rgb)   # FACE_DETECT settings
    """

    def __init__(self, kmodel, config: RegionConfig = FACE_DETECT, switches=None):
        from qsim.k210.kmodel_v3_exec import KmodelV3Executor
        from qsim.k210.kpu import KpuSwitches

        self.executor = KmodelV3Executor(kmodel, switches or KpuSwitches())
        self.config = config
        convs = [layer for layer in self.executor.model.layers if layer.name == "k210_conv"]
        if not convs:
            raise InputError(f"{self.executor.model.path}: no K210_CONV layer to take the region grid from")
        self.grid_hw = convs[-1].body.args.out_hw
        shape = self.executor.model.input_shapes[0]
        if (shape[3], shape[2]) != tuple(config.net_wh):
            raise InputError(f"{self.executor.model.path}: input {shape[3]}x{shape[2]} but the decode settings "
                             f"are for {config.net_wh[0]}x{config.net_wh[1]}")

    def __call__(self, rgb: np.ndarray, threshold: float | None = None) -> RegionDetections:
        from qsim.facedet.ultraface import image_to_input

        rgb = np.asarray(rgb)
        x = image_to_input(rgb, *self.config.net_wh)
        out = self.executor.run(x).outputs[0]
        return decode(out, self.grid_hw, self.config, (rgb.shape[1], rgb.shape[0]), threshold)
