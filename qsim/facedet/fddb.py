"""FDDB reader (Jain & Learned-Miller, UM-CS-2010-009) and the paper's ellipse-to-box rule.

Files (under the FDDB root, by default ``<data>/fddb``)::

    FDDB-folds/FDDB-fold-XX-ellipseList.txt    name / count / count lines of ellipses
    originalPics/<name>.jpg                    the pictures
    FDDB-present-ellipseList.txt               the same format, only images present here

An ellipse line is ``major_radius minor_radius angle centre_x centre_y 1`` (angle in radians of
the major axis from the x axis; upright faces have angle near pi/2).

The paper's eqs. (1)-(2) turn an ellipse into a square box: ``w = h = 1.3 w_ellipse`` and
``c_y += 0.26 w_ellipse`` (image y points down, so the box moves down), ``c_x`` unchanged.
The paper does not define ``w_ellipse``; `BOX_RULES` names the readings (``box_rule=``):

- ``major_radius`` (default): the first field of an FDDB line. The box is a square about the
  ellipse's width, shifted down 0.2 widths, ending just above the chin: the box WIDER-trained
  detectors draw. On the 225 FDDB pictures present it gives AP 0.928 (our A98) / 0.708
  (Viola-Jones) against the paper's 0.891 / 0.738, and (1.3, 0.26) lies on a plateau of AP.
- ``two_minor``: ``2 * minor_radius`` (qsim before issue 13): the box reaches the neck;
  (1.3, 0.26) lies on a steep slope of AP (A98 0.515).
- ``minor_radius``, ``two_major``: the other two readings (boxes far too small / too large).
- ``bbox``: the axis-aligned bounding box of the rotated ellipse; alpha and beta unused.

See docs/face-detection.md for the measurements and how to redraw the boxes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from qsim.errors import InputError
from qsim.facedet.annotations import FaceDataset, FaceImage, read_annotation_lines

ALPHA = 1.3  # box side / ellipse width (eq. 1)
BETA = 0.26  # downward shift of the centre / ellipse width (eq. 2)

# What w_ellipse of eqs. (1)-(2) means, by name (field 0 = major radius, field 1 = minor radius).
BOX_RULES = ("major_radius", "two_minor", "minor_radius", "two_major", "bbox")
BOX_RULE = "major_radius"  # the reading the evidence supports (see the module docstring)


def check_box_rule(rule) -> str:
    """``rule`` if it names a reading in `BOX_RULES`, else `InputError` naming it."""
    if rule not in BOX_RULES:
        raise InputError(f"FDDB box rule must be one of {', '.join(BOX_RULES)}; got {rule!r}")
    return rule


def read_ellipse_list(path) -> list[tuple[str, np.ndarray]]:
    """Parse an FDDB ellipse list.

    Returns:
        ``[(name, ellipses (N, 6) float64)]`` in file order.

    Raises:
        InputError: missing file or malformed line, naming the file and line number.
    """
    path = Path(path)
    lines = read_annotation_lines(path, "FDDB ellipse list")
    out: list[tuple[str, np.ndarray]] = []
    i = 0
    n_lines = len(lines)

    def fail(msg: str):
        raise InputError(f"{path}:{i + 1}: {msg}")

    while i < n_lines:
        name = lines[i].strip()
        if not name:
            i += 1
            continue
        i += 1
        if i >= n_lines:
            fail(f"image {name!r} has no face count")
        try:
            count = int(lines[i].strip())
        except ValueError:
            fail(f"expected a face count after {name!r}; got {lines[i].strip()!r}")
        if count < 0:
            fail(f"negative face count {count}")
        ellipses = np.zeros((count, 6))
        for k in range(count):
            i += 1
            if i >= n_lines:
                fail(f"image {name!r}: file ends after {k} of {count} ellipses")
            fields = lines[i].split()
            try:
                values = [float(v) for v in fields]
            except ValueError:
                fail(f"ellipse line is not numeric: {lines[i].strip()!r}")
            if len(values) != 6 or not np.isfinite(values).all():
                fail(f"ellipse line needs 6 finite numbers; got {lines[i].strip()!r}")
            if values[0] <= 0 or values[1] <= 0:
                fail(f"ellipse radii must be positive; got {values[0]}, {values[1]}")
            ellipses[k] = values
        i += 1
        out.append((name, ellipses))
    return out


def ellipse_to_box(ellipses, alpha: float = ALPHA, beta: float = BETA, rule: str = BOX_RULE) -> np.ndarray:
    """The paper's square box of each ellipse (eqs. 1-2), under one reading of ``w_ellipse``.

    Args:
        ellipses: ``(N, >=5)``: major radius, minor radius, angle (radians), centre x, centre y.
        alpha: side / ellipse width.
        beta: centre shift down / ellipse width.
        rule: the reading of ``w_ellipse``, one of `BOX_RULES`: ``major_radius`` (default),
            ``two_minor``, ``minor_radius``, ``two_major``; or ``bbox``, the axis-aligned
            bounding box of the rotated ellipse (alpha and beta unused).

    Returns:
        ``(N, 4)`` x1y1x2y2.

    Raises:
        InputError: unknown rule, or ellipses not of shape ``(N, >=5)``.

    >>> ellipse_to_box([[60.0, 50.0, 1.57, 200.0, 100.0, 1]]).round(2).tolist()
    [[161.0, 76.6, 239.0, 154.6]]
    >>> ellipse_to_box([[60.0, 50.0, 1.57, 200.0, 100.0, 1]], rule="two_minor").tolist()
    [[135.0, 61.0, 265.0, 191.0]]
    """
    check_box_rule(rule)
    e = np.asarray(ellipses, dtype=np.float64)
    if e.size == 0:
        return np.zeros((0, 4))
    if e.ndim != 2 or e.shape[1] < 5:
        raise InputError(f"ellipses must be (N, >=5) major, minor, angle, cx, cy; got shape {e.shape}")
    major, minor, angle, cx, cy = e[:, 0], e[:, 1], e[:, 2], e[:, 3], e[:, 4]
    if rule == "bbox":
        # half extents of a rotated ellipse: sqrt(a^2 cos^2 t + b^2 sin^2 t) along x, sin/cos swapped along y
        c, s = np.cos(angle), np.sin(angle)
        hx = np.sqrt((major * c) ** 2 + (minor * s) ** 2)
        hy = np.sqrt((major * s) ** 2 + (minor * c) ** 2)
        return np.stack([cx - hx, cy - hy, cx + hx, cy + hy], axis=1)
    w_ellipse = {"major_radius": major, "two_minor": 2.0 * minor, "minor_radius": minor,
                 "two_major": 2.0 * major}[rule]
    side = alpha * w_ellipse
    cy = cy + beta * w_ellipse
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)


def fddb_root(root=None) -> Path:
    """The FDDB folder: ``root`` if given, else ``<data>/fddb``."""
    if root is not None:
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"FDDB folder {root} not found")
        return root
    from qsim.datasets import data_path

    return data_path("fddb")


def load_fddb(root=None, folds="present", alpha: float = ALPHA, beta: float = BETA,
              box_rule: str = BOX_RULE) -> FaceDataset:
    """The FDDB images present on disk with their square gt boxes.

    Args:
        root: FDDB folder (holding ``FDDB-folds/`` and ``originalPics/``); default ``<data>/fddb``.
        folds: ``"present"`` (``FDDB-present-ellipseList.txt``), ``"all"`` (folds 1-10), or an
            iterable of fold numbers.
        alpha, beta: the ellipse-to-box coefficients.
        box_rule: the reading of ``w_ellipse`` (`BOX_RULES`; default ``major_radius``).

    Returns:
        A `FaceDataset`; images listed but absent are skipped and counted in ``missing``.
        ``extra`` holds the ellipses ``(N, 6)``.
    """
    check_box_rule(box_rule)
    root = fddb_root(root)
    if isinstance(folds, str):
        if folds == "present":
            lists = [root / "FDDB-present-ellipseList.txt"]
        elif folds == "all":
            lists = [root / "FDDB-folds" / f"FDDB-fold-{k:02d}-ellipseList.txt" for k in range(1, 11)]
        else:
            raise InputError(f"folds must be 'present', 'all' or fold numbers; got {folds!r}")
    else:
        fold_numbers = [int(k) for k in folds]
        bad = [k for k in fold_numbers if not 1 <= k <= 10]
        if bad:
            raise InputError(f"FDDB folds are numbered 1-10; got {bad}")
        lists = [root / "FDDB-folds" / f"FDDB-fold-{k:02d}-ellipseList.txt" for k in fold_numbers]
    images: list[FaceImage] = []
    missing: list[str] = []
    missing_faces = 0
    seen: set[str] = set()
    for list_path in lists:
        for name, ellipses in read_ellipse_list(list_path):
            if name in seen:
                continue
            seen.add(name)
            path = root / "originalPics" / f"{name}.jpg"
            if not path.is_file():
                missing.append(name)
                missing_faces += len(ellipses)
                continue
            boxes = ellipse_to_box(ellipses, alpha, beta, box_rule) if len(ellipses) else np.zeros((0, 4))
            images.append(FaceImage(name, path, boxes, np.zeros(len(boxes), bool), ellipses))
    return FaceDataset("fddb", images, missing, missing_faces)
