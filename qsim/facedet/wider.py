"""WIDER FACE ground-truth reader (Yang et al., CVPR 2016), official text format.

``wider_face_split/wider_face_<split>_bbx_gt.txt``: for each image, its name (relative to
``WIDER_<split>/images/``), the face count, then one line per face::

    x y w h blur expression illumination invalid occlusion pose

An image with 0 faces is followed by one dummy line ``0 0 0 0 0 0 0 0 0 0``.
Boxes become x1y1x2y2 = ``(x, y, x + w, y + h)``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from qsim.errors import InputError
from qsim.facedet.annotations import FaceDataset, FaceImage, read_annotation_lines

ATTRIBUTES = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")
INVALID_MODES = ("ignore", "drop", "keep")


def read_wider_gt(path) -> list[tuple[str, np.ndarray]]:
    """Parse a WIDER gt file.

    Returns:
        ``[(name, fields (N, 10) int64)]``: x, y, w, h then the 6 attributes.

    Raises:
        InputError: missing file or malformed line, naming the file and line number.
    """
    path = Path(path)
    lines = read_annotation_lines(path, "WIDER ground truth")
    out: list[tuple[str, np.ndarray]] = []
    i = 0

    def fail(msg: str):
        raise InputError(f"{path}:{i + 1}: {msg}")

    def numbers(line: str) -> list[int]:
        try:
            values = [int(float(v)) for v in line.split()]
        except ValueError:
            fail(f"face line is not numeric: {line.strip()!r}")
        if len(values) != 10:
            fail(f"face line needs 10 numbers (x y w h + 6 attributes); got {line.strip()!r}")
        return values

    while i < len(lines):
        name = lines[i].strip()
        if not name:
            i += 1
            continue
        i += 1
        if i >= len(lines):
            fail(f"image {name!r} has no face count")
        try:
            count = int(lines[i].strip())
        except ValueError:
            fail(f"expected a face count after {name!r}; got {lines[i].strip()!r}")
        if count < 0:
            fail(f"negative face count {count}")
        rows = []
        for k in range(max(count, 1)):  # count 0 is followed by a dummy line
            i += 1
            if i >= len(lines):
                fail(f"image {name!r}: file ends after {k} of {count} faces")
            values = numbers(lines[i])
            if count:
                rows.append(values)
        i += 1
        out.append((name, np.asarray(rows, dtype=np.int64).reshape(-1, 10)))
    return out


def load_wider(root=None, split: str = "val", invalid: str = "ignore", min_size: float = 0.0) -> FaceDataset:
    """The WIDER images present on disk with their gt boxes.

    Args:
        root: WIDER folder (holding ``wider_face_split/`` and ``WIDER_<split>/images/``);
            default ``<data>/wider``.
        split: ``"val"`` (the only split shipped here), ``"train"`` or ``"test"``.
        invalid: what to do with faces flagged ``invalid`` (and boxes with w or h = 0):
            ``"ignore"`` (kept as ignore regions: not required, detections on them not penalised),
            ``"drop"`` (removed; detections on them become false positives) or ``"keep"``
            (ordinary faces; zero-size boxes are still ignored, since nothing can match them).
        min_size: faces whose shorter side is below this many pixels become ignore regions
            (0 = none); the tiny faces of WIDER "hard" are beyond a stride-16 detector.

    Returns:
        A `FaceDataset`; images listed but absent are skipped and counted. ``extra`` holds
        the 6 attributes per box.
    """
    if invalid not in INVALID_MODES:
        raise InputError(f"invalid must be one of {INVALID_MODES}; got {invalid!r}")
    if root is None:
        from qsim.datasets import data_path

        root = data_path("wider")
    root = Path(root)
    gt_path = root / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt"
    image_root = root / f"WIDER_{split}" / "images"
    images: list[FaceImage] = []
    missing: list[str] = []
    missing_faces = 0
    for name, fields in read_wider_gt(gt_path):
        path = image_root / name
        if not path.is_file():
            missing.append(name)
            missing_faces += len(fields)
            continue
        x, y, w, h = (fields[:, k].astype(np.float64) for k in range(4))
        boxes = np.stack([x, y, x + w, y + h], axis=1)
        flagged = fields[:, 4 + ATTRIBUTES.index("invalid")] != 0
        empty = (w <= 0) | (h <= 0)
        if invalid == "drop":
            keep = ~(flagged | empty)
            boxes, fields, flagged, empty = boxes[keep], fields[keep], flagged[keep], empty[keep]
        ignore = empty.copy() if invalid == "keep" else flagged | empty
        if min_size > 0:
            ignore |= np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) < min_size
        images.append(FaceImage(name, path, boxes, ignore, fields[:, 4:]))
    return FaceDataset(f"wider-{split}", images, missing, missing_faces)
