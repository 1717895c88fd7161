"""The 25 Tiny-Face templates (Hu & Ramanan, CVPR 2017) used as anchors by the face head.

Each template is ``[x1, y1, x2, y2]`` in input pixels relative to a cell centre
(symmetric boxes, widths 19-173 px). The numbers come from tiny-faces-pytorch
(MIT licence) and are bundled as ``qsim/assets/tinyface_templates.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qsim.errors import InputError

NUM_TEMPLATES = 25
TEMPLATES_PATH = Path(__file__).resolve().parent.parent / "assets" / "tinyface_templates.json"


def load_templates(path=None) -> np.ndarray:
    """Read templates as a ``(T, 4)`` float64 array ``[x1, y1, x2, y2]`` around a cell centre.

    Args:
        path: a JSON list of ``[x1, y1, x2, y2]``; default: the bundled 25 Tiny-Face templates.

    Raises:
        InputError: unreadable file, wrong shape, non-finite values or empty boxes.

    >>> t = load_templates()
    >>> t.shape, t[1].tolist()
    ((25, 4), [-48.75, -65.25, 48.75, 65.25])
    """
    path = Path(path) if path is not None else TEMPLATES_PATH
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        arr = np.asarray(data, dtype=np.float64)
    except FileNotFoundError as exc:
        raise InputError(f"templates file {path} not found") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"cannot read templates from {path}: {exc}") from exc
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] == 0:
        raise InputError(f"templates in {path} must be a list of [x1, y1, x2, y2]; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"templates in {path} hold NaN/Inf")
    bad = np.flatnonzero((arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1]))
    if bad.size:
        raise InputError(f"template {int(bad[0])} in {path} is empty: {arr[bad[0]].tolist()}")
    return arr
