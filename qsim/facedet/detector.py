"""Face detection with any executor: image pyramid, decode, map back, NMS (the paper's Sec. IV).

``run_fn(x) -> out`` is the only link to a network: ``x`` is ``float32 (1, H, W, 3)``
preprocessed with `qsim.images.mobilenet_preprocess` and ``out`` the linear head output
``(1, h, w, 125)`` (see `qsim.facedet.coding`). Float, fixed-point, FP16 and K210 executors are
all wrapped the same way, so detections differ only through the numbers the network computes.

Pipeline for an ``(H, W)`` image:
    1. for each pyramid scale ``s`` (0.5x, 1x, 2x by default), resize the image to
       ``(round(s H), round(s W))`` with `qsim.images.resize_bilinear` (half-pixel centres);
       with ``max_side`` set, a scale whose longest side would exceed it is lowered to fit
       (and scales that coincide after that are run once);
    2. run the network and keep its raw output (`ScaleOutput`, cacheable);
    3. decode every cell-template with ``sigmoid(logit) >= score_threshold``, keep the
       ``max_per_scale`` best, and divide box coordinates by the per-axis resize factors
       (resized size / original size) to return to original pixels;
    4. greedy NMS over all scales together (IoU 0.3).
With ``input_hw`` set the network sees a fixed input, as on a device (the paper's K210 ran
224x224): each scale's picture is resized by ``s * fit``, ``fit = min(H_in / H, W_in / W)``
(aspect kept), placed at the top left of an ``input_hw`` canvas of mid grey (0 after
preprocessing) and cut to it; boxes map back through the same factors.
Boxes are not clipped to the image: FDDB's gt boxes may cross its border too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qsim.errors import InputError
from qsim.facedet.coding import decode
from qsim.facedet.nms import nms
from qsim.facedet.templates import load_templates
from qsim.images import check_image, mobilenet_preprocess, resize_bilinear

DEFAULT_SCALES = (0.5, 1.0, 2.0)


@dataclass
class ScaleOutput:
    """The network's raw answer at one pyramid level.

    Attributes:
        scale: the pyramid scale actually used (after any ``max_side`` limit).
        input_hw: ``(h, w)`` of the network input.
        output: ``(oh, ow, C)`` float32 head output.
    """

    scale: float
    input_hw: tuple[int, int]
    output: np.ndarray


@dataclass
class Detections:
    """Faces found in one image.

    Attributes:
        boxes: ``(K, 4)`` x1y1x2y2 in original-image pixels, by decreasing score.
        scores: ``(K,)`` sigmoid scores.
        raw: per-scale network outputs (cache these to re-decode with other thresholds).
    """

    boxes: np.ndarray
    scores: np.ndarray
    raw: list[ScaleOutput] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def pyramid_sizes(image_hw, scales=DEFAULT_SCALES, max_side: int | None = None) -> list[tuple[float, tuple[int, int]]]:
    """``[(scale, (h, w))]`` of the network inputs for an image of size ``image_hw``.

    >>> pyramid_sizes((300, 450), (0.5, 1.0, 2.0), max_side=600)
    [(0.5, (150, 225)), (1.0, (300, 450)), (1.3333333333333333, (400, 600))]
    """
    h, w = (int(v) for v in image_hw)
    if not scales:
        raise InputError("the image pyramid needs at least one scale")
    out: list[tuple[float, tuple[int, int]]] = []
    for s in scales:
        s = float(s)
        if not s > 0:
            raise InputError(f"pyramid scales must be positive; got {s}")
        if max_side is not None and s * max(h, w) > max_side:
            s = max_side / max(h, w)
        size = (max(1, int(round(s * h))), max(1, int(round(s * w))))
        if all(size != prev for _, prev in out):
            out.append((s, size))
    return out


def fixed_input_sizes(image_hw, input_hw, scales=(1.0,)) -> list[tuple[float, tuple[int, int]]]:
    """``[(scale, (h, w))]`` of the resized picture inside a fixed ``input_hw`` network input.

    >>> fixed_input_sizes((300, 450), (224, 224))
    [(0.49777777777777776, (149, 224))]
    """
    h, w = (int(v) for v in image_hw)
    in_h, in_w = (int(v) for v in input_hw)
    if in_h < 1 or in_w < 1:
        raise InputError(f"fixed network input must be at least 1x1; got {in_h}x{in_w}")
    fit = min(in_h / h, in_w / w)
    return pyramid_sizes((h, w), [fit * float(s) for s in scales])


def _canvas(x: np.ndarray, input_hw) -> np.ndarray:
    """``x`` (h, w, 3), preprocessed, at the top left of an ``input_hw`` canvas of zeros, cut to it."""
    out = np.zeros((int(input_hw[0]), int(input_hw[1]), x.shape[2]), np.float32)
    h, w = min(out.shape[0], x.shape[0]), min(out.shape[1], x.shape[1])
    out[:h, :w] = x[:h, :w]
    return out


def run_pyramid(image, run_fn, scales=DEFAULT_SCALES, max_side: int | None = None,
                input_hw: tuple[int, int] | None = None) -> list[ScaleOutput]:
    """Run ``run_fn`` on every pyramid level of an RGB ``(H, W, 3)`` image (values 0..255).

    ``input_hw``: a fixed network input (see the module doc); ``max_side`` is then unused.
    """
    img = check_image(image)
    if img.ndim != 3:
        raise InputError(f"detect takes one (H, W, 3) image; got shape {img.shape}")
    raw: list[ScaleOutput] = []
    sizes = (pyramid_sizes(img.shape[:2], scales, max_side) if input_hw is None
             else fixed_input_sizes(img.shape[:2], input_hw, scales))
    for scale, size in sizes:
        resized = img.astype(np.float32) if size == img.shape[:2] else resize_bilinear(img, size)
        x = mobilenet_preprocess(resized)
        x = (x if input_hw is None else _canvas(x, input_hw))[None]
        out = np.asarray(run_fn(x))
        if out.ndim == 4 and out.shape[0] == 1:
            out = out[0]
        if out.ndim != 3:
            raise InputError(f"network output at scale {scale:g} must be (1, h, w, C); got shape {out.shape}")
        raw.append(ScaleOutput(scale, size, out.astype(np.float32, copy=False)))
    return raw


def candidates_from_outputs(
    raw,
    image_hw,
    *,
    stride: float,
    templates=None,
    score_threshold: float,
    max_per_scale: int = 2000,
):
    """Steps 3 of the pipeline without NMS: every scale's decoded boxes in original pixels.

    Returns:
        ``(boxes (K, 4), scores (K,))``, scale by scale, each by decreasing score. Cache these:
        `nms` on the subset with ``score >= t`` gives the detections at any threshold ``t``.
    """
    tpl = load_templates() if templates is None else np.asarray(templates, dtype=np.float64)
    h, w = (int(v) for v in image_hw)
    all_boxes, all_scores = [np.zeros((0, 4))], [np.zeros(0)]
    for level in raw:
        boxes, scores = decode(level.output, stride, tpl, score_threshold)
        boxes, scores = boxes[:max_per_scale], scores[:max_per_scale]
        fy = level.input_hw[0] / h
        fx = level.input_hw[1] / w
        all_boxes.append(boxes / np.array([fx, fy, fx, fy]))
        all_scores.append(scores)
    return np.concatenate(all_boxes), np.concatenate(all_scores)


def detections_from_outputs(
    raw,
    image_hw,
    *,
    stride: float,
    templates=None,
    score_threshold: float,
    nms_iou: float = 0.3,
    max_per_scale: int = 2000,
):
    """Decode cached per-scale outputs, map to original pixels, NMS.

    Returns:
        ``(boxes (K, 4), scores (K,))`` by decreasing score.
    """
    boxes, scores = candidates_from_outputs(
        raw, image_hw, stride=stride, templates=templates, score_threshold=score_threshold,
        max_per_scale=max_per_scale,
    )
    keep = nms(boxes, scores, nms_iou)
    return boxes[keep], scores[keep]


def detect(
    image,
    run_fn,
    *,
    stride: float,
    templates=None,
    scales=DEFAULT_SCALES,
    score_threshold: float,
    nms_iou: float = 0.3,
    max_side: int | None = None,
    input_hw: tuple[int, int] | None = None,
) -> Detections:
    """Faces in an RGB image (uint8 ``(H, W, 3)``), through any executor.

    Args:
        image: the picture, values 0..255.
        run_fn: ``float32 (1, h, w, 3) -> (1, oh, ow, 125)`` network.
        stride: input pixels per output cell (16 for heads A and C, 32 for B).
        templates: ``(25, 4)``; default the bundled Tiny-Face templates.
        scales: pyramid scales.
        score_threshold: minimum sigmoid score (use a low one, e.g. 0.05, for AP curves).
        nms_iou: NMS IoU threshold.
        max_side: cap on the longest side of any network input.
        input_hw: a fixed network input size (letterboxed picture; see the module doc).
    """
    raw = run_pyramid(image, run_fn, scales, max_side, input_hw)
    boxes, scores = detections_from_outputs(
        raw, np.shape(image)[:2], stride=stride, templates=templates, score_threshold=score_threshold, nms_iou=nms_iou
    )
    return Detections(boxes, scores, raw)
