"""WIDER FACE training crops and their eq. (3) targets for the Tiny-Face head.

Contract:

* Source: the WIDER FACE *val* subset in ``<data>/wider`` (only the images present on disk,
  ground truth from ``wider_face_split/wider_face_val_bbx_gt.txt`` read by
  ``qsim.facedet.wider``). FDDB is the evaluation set and is never read here. Boxes
  flagged ``invalid`` or with ``w`` or ``h`` <= 0 are dropped.
* Crops: ``size`` × ``size`` (500, the paper's training input), RGB uint8. Each crop picks
  an image (cycling through a seeded permutation), one of its faces, and a target face
  height drawn log-uniformly from the templates' height range (its top optionally widened
  by ``oversize``); the image is rescaled by ``target / face_h`` (clipped to
  [``min_scale``, ``max_scale``]) and cut around that face at a random offset, so the
  faces of the crop cover the 25 templates' sizes. Shrinking uses ``cv2.INTER_AREA``
  (no aliasing), enlarging ``cv2.INTER_LINEAR``; area outside the image is filled with
  ``PAD_VALUE`` (mid grey, ≈ 0 after preprocessing). Half of the crops are mirrored.
  Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed gives the same
  crops, bit for bit.
* Boxes follow the crop exactly (pixel edges scale by the resize factor and shift by the
  crop origin). A face is kept if at least ``min_visible`` of its area is inside the crop
  (then clipped to the crop) and both sides are >= ``min_box`` pixels (6); other faces
  are dropped.
* Targets (``targets_for``): the 25 templates at every cell of the head's output map
  (stride 16 for head A), labelled by ``qsim.facedet.coding.assign`` (positive IoU >= 0.7
  or a face's best anchor, negative < 0.3, else ignore) and encoded by eq. (3) with
  ``qsim.facedet.coding.encode``.
* Preprocessing (``preprocess``) = MobileNetV2's ``x / 127.5 - 1`` on RGB.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAD_VALUE = 128


def wider_images():
    """The WIDER val images present in the data folder with their valid boxes.

    ``qsim.facedet.wider.load_wider(invalid="drop")``: faces flagged ``invalid`` and
    zero-size boxes are removed. Returns a list of ``FaceImage`` (``.path``, ``.boxes``
    (N, 4) x1y1x2y2 float64).
    """
    from qsim.facedet.wider import load_wider

    return load_wider(split="val", invalid="drop").images


def template_height_range(templates: np.ndarray) -> tuple[float, float]:
    """Smallest and largest template height (pixels)."""
    heights = templates[:, 3] - templates[:, 1]
    return float(heights.min()), float(heights.max())


@dataclass
class CropSet:
    """Fixed training crops: ``images`` (N, size, size, 3) uint8 RGB and per-crop boxes."""

    images: np.ndarray
    boxes: list[np.ndarray]
    sources: list[str]
    scales: np.ndarray
    flipped: np.ndarray


def _scale_image(image: np.ndarray, scale: float):
    """Resize by ``scale``; returns the image and the exact per-axis factors (sx, sy)."""
    import cv2

    h, w = image.shape[:2]
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out = cv2.resize(image, (new_w, new_h), interpolation=interp)
    return out, new_w / w, new_h / h


def _cut(image: np.ndarray, x0: int, y0: int, size: int) -> np.ndarray:
    """``image[y0:y0+size, x0:x0+size]`` with ``PAD_VALUE`` outside the image."""
    out = np.full((size, size, 3), PAD_VALUE, np.uint8)
    h, w = image.shape[:2]
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + size, w), min(y0 + size, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0: sy1 - y0, sx0 - x0: sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def crop_boxes(boxes, sx, sy, x0, y0, size, min_visible=0.5, min_box=6.0):
    """Map source boxes into a crop: scale, shift, keep if visible enough and big enough."""
    if len(boxes) == 0:
        return np.zeros((0, 4))
    b = boxes * np.array([sx, sy, sx, sy]) - np.array([x0, y0, x0, y0], np.float64)
    clipped = np.clip(b, 0, size)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    vis = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (vis >= min_visible * area) & (cw >= min_box) & (ch >= min_box)
    return clipped[keep]


def make_crops(
    images: list,
    n_crops: int,
    templates: np.ndarray,
    size: int = 500,
    seed: int = 0,
    min_scale: float = 0.25,
    max_scale: float = 4.0,
    oversize: float = 1.0,
    min_box: float = 6.0,
    progress: bool = False,
) -> CropSet:
    """Draw ``n_crops`` fixed, seeded training crops (see the module docstring).

    ``oversize`` > 1 widens the target face heights to ``oversize`` × the largest template,
    so some crops hold faces bigger than any template: their best anchor still learns to
    grow the box, and the many small anchors on eyes, mouths and cheeks become negatives
    (without them a pyramid's 2× level fires on parts of big faces).
    """
    from qsim.images import load_image

    rng = np.random.default_rng(seed)
    min_h, max_h = template_height_range(templates)
    usable = [im for im in images if len(im.boxes)]
    if not usable:
        raise ValueError("no WIDER image with a valid face")
    order = np.concatenate([rng.permutation(len(usable)) for _ in range(n_crops // len(usable) + 1)])
    out = np.empty((n_crops, size, size, 3), np.uint8)
    boxes, sources, scales, flipped = [], [], np.empty(n_crops), np.zeros(n_crops, bool)
    cache: dict[Path, np.ndarray] = {}
    it = range(n_crops)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="crops")
    for k in it:
        src = usable[order[k]]
        if src.path not in cache:
            cache = {src.path: load_image(src.path)}  # images come in runs: keep one
        image = cache[src.path]
        face = src.boxes[rng.integers(len(src.boxes))]
        face_h = face[3] - face[1]
        target_h = float(np.exp(rng.uniform(np.log(min_h), np.log(oversize * max_h))))
        scale = float(np.clip(target_h / face_h, min_scale, max_scale))
        scaled, sx, sy = _scale_image(image, scale)
        cx = 0.5 * (face[0] + face[2]) * sx
        cy = 0.5 * (face[1] + face[3]) * sy
        # The chosen face's centre lands uniformly in the middle 80% of the crop.
        x0 = int(np.floor(cx - rng.uniform(0.1, 0.9) * size))
        y0 = int(np.floor(cy - rng.uniform(0.1, 0.9) * size))
        crop = _cut(scaled, x0, y0, size)
        b = crop_boxes(src.boxes, sx, sy, x0, y0, size, min_box=min_box)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
            b = np.stack([size - b[:, 2], b[:, 1], size - b[:, 0], b[:, 3]], axis=1)
            flipped[k] = True
        out[k] = crop
        boxes.append(b)
        sources.append(src.path.name)
        scales[k] = scale
    return CropSet(out, boxes, sources, scales, flipped)


def preprocess(images: np.ndarray) -> np.ndarray:
    """MobileNetV2 preprocessing on RGB uint8: ``x / 127.5 - 1`` as float32."""
    return images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def targets_for(boxes: np.ndarray, out_h: int, out_w: int, stride: int, templates: np.ndarray):
    """Labels and eq. (3) deltas of every cell-template of a head output map.

    Returns:
        ``labels`` (out_h, out_w, 25) int8 in {1, 0, -1} and ``deltas`` (out_h, out_w, 25, 4)
        float32 (zero where the label is not positive).
    """
    from qsim.facedet import coding

    anchors = coding.anchors(out_h, out_w, stride, templates)
    if len(boxes) == 0:
        labels = np.zeros(anchors.shape[:3], np.int8)
        return labels, np.zeros(anchors.shape, np.float32)
    labels, matched = coding.assign(boxes, anchors)
    deltas = coding.encode(boxes[matched], anchors).astype(np.float32)
    deltas[labels != 1] = 0.0
    return labels.astype(np.int8), deltas
