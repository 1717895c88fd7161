"""FDDB reader (Jain & Learned-Miller, UM-CS-2010-009) and the paper's ellipse-to-box rule.

Files (under the FDDB root, by default ``<data>/fddb``)::

    FDDB-folds/FDDB-fold-XX-ellipseList.txt    name / count / count lines of ellipses
    originalPics/<name>.jpg                    the pictures
    FDDB-present-ellipseList.txt               the same format, only images present here

An ellipse line is ``major_radius minor_radius angle centre_x centre_y 1`` (angle in radians of
the major axis from the x axis; upright faces have angle near pi/2).

The paper's eqs. (1)-(2) turn an ellipse into a square box: ``w = h = 1.3 w_ellipse`` and
``c_y += 0.26 w_ellipse`` (image y points down, so the box moves down), ``c_x`` unchanged,
with ``w_ellipse = 2 * minor_radius``. Checked by eye on 8 present images with ellipses and
boxes drawn (`qsim.facedet.draw.draw_boxes(..., ellipses=...)`, see
``tests/facedet/test_fddb.py::test_fddb_boxes_drawn``): the ellipse runs from the chin to the
top of the forehead/hair; the paper's box (y pointing down) starts at the forehead just above
the eyebrows, spans the ears sideways and ends about 0.1-0.15 box sides below the chin. Shifting
up instead (y pointing up) would put the box's top above the head, so ``+`` with y down is the
paper's meaning. The box is looser than a tight WIDER box; IoU >= 0.5 absorbs the difference.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from qsim.errors import InputError
from qsim.facedet.annotations import FaceDataset, FaceImage, read_annotation_lines

ALPHA = 1.3  # box side / ellipse width (eq. 1)
BETA = 0.26  # downward shift of the centre / ellipse width (eq. 2)


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


def ellipse_to_box(ellipses, alpha: float = ALPHA, beta: float = BETA) -> np.ndarray:
    """The paper's square box of each ellipse (eqs. 1-2).

    Args:
        ellipses: ``(N, >=5)``: major radius, minor radius, angle, centre x, centre y.
        alpha: side / ellipse width.
        beta: centre shift down / ellipse width.

    Returns:
        ``(N, 4)`` x1y1x2y2.

    >>> ellipse_to_box([[60.0, 50.0, 1.57, 200.0, 100.0, 1]]).tolist()
    [[135.0, 61.0, 265.0, 191.0]]
    """
    e = np.asarray(ellipses, dtype=np.float64).reshape(-1, np.shape(ellipses)[-1] if np.size(ellipses) else 6)
    w_ellipse = 2.0 * e[:, 1]
    side = alpha * w_ellipse
    cx = e[:, 3]
    cy = e[:, 4] + beta * w_ellipse
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


def load_fddb(root=None, folds="present", alpha: float = ALPHA, beta: float = BETA) -> FaceDataset:
    """The FDDB images present on disk with their square gt boxes.

    Args:
        root: FDDB folder (holding ``FDDB-folds/`` and ``originalPics/``); default ``<data>/fddb``.
        folds: ``"present"`` (``FDDB-present-ellipseList.txt``), ``"all"`` (folds 1-10), or an
            iterable of fold numbers.
        alpha, beta: the ellipse-to-box coefficients.

    Returns:
        A `FaceDataset`; images listed but absent are skipped and counted in ``missing``.
        ``extra`` holds the ellipses ``(N, 6)``.
    """
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
            boxes = ellipse_to_box(ellipses, alpha, beta) if len(ellipses) else np.zeros((0, 4))
            images.append(FaceImage(name, path, boxes, np.zeros(len(boxes), bool), ellipses))
    return FaceDataset("fddb", images, missing, missing_faces)
