"""The paper's baseline: OpenCV's Viola-Jones face detector on greyscale images.

Settings (the paper's Table IV row, "scale factor 1.1, greyscale"): cascade
``haarcascade_frontalface_default.xml``, ``scaleFactor=1.1``, ``minNeighbors=3`` (OpenCV's
default; the paper does not state it), ``minSize=(20, 20)`` (the cascade's window), RGB turned
to grey with ``cv2.cvtColor(..., COLOR_RGB2GRAY)`` (0.299 R + 0.587 G + 0.114 B).

Scores for the AP curve: ``detectMultiScale3(..., outputRejectLevels=True)`` returns, per grouped
detection, the weight of the last stage it reached (``levelWeights``); higher means more
face-like. With ``outputRejectLevels`` OpenCV also returns windows that failed in the last
stages (which the plain ``detectMultiScale`` drops): they carry low weights and extend the
PR curve towards higher recall.

OpenCV is imported lazily. ``cv2.CascadeClassifier`` exists in OpenCV 4.x
(``opencv-python-headless<5``); OpenCV 5 moved it to the contrib package
(``cv2.xobjdetect``) and stopped shipping the cascade XML files, so pass ``cascade_path``
there.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from qsim.errors import QsimError
from qsim.images import check_image

CASCADE_FILE = "haarcascade_frontalface_default.xml"
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 3
MIN_SIZE = (20, 20)


def _cv2():
    try:
        import cv2
    except ImportError as exc:
        raise QsimError(
            "the Viola-Jones baseline needs OpenCV: pip install 'opencv-python-headless>=4.8,<5'"
        ) from exc
    return cv2


def _cascade_class(cv2):
    for owner in (cv2, getattr(cv2, "xobjdetect", None)):
        cls = getattr(owner, "CascadeClassifier", None) if owner is not None else None
        if cls is not None:
            return cls
    raise QsimError(
        f"OpenCV {cv2.__version__} has no CascadeClassifier (OpenCV 5 moved it to opencv-contrib); "
        "install 'opencv-python-headless>=4.8,<5' or opencv-contrib-python-headless"
    )


def default_cascade_path() -> Path:
    """OpenCV's bundled frontal-face cascade; QsimError if this OpenCV ships none."""
    cv2 = _cv2()
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = Path(folder) / CASCADE_FILE if folder else None
    if path is None or not path.is_file():
        raise QsimError(
            f"OpenCV {cv2.__version__} ships no {CASCADE_FILE} (OpenCV 5 wheels have an empty cv2/data); "
            "install 'opencv-python-headless>=4.8,<5' or pass cascade_path"
        )
    return path


class ViolaJones:
    """OpenCV Haar-cascade face detector with scores.

    Args:
        cascade_path: cascade XML; default OpenCV's ``haarcascade_frontalface_default.xml``.
        scale_factor, min_neighbors, min_size: ``detectMultiScale3`` parameters.

    Calling the object on an RGB ``uint8 (H, W, 3)`` image returns ``(boxes (K, 4) x1y1x2y2,
    scores (K,))`` by decreasing score.
    """

    def __init__(self, cascade_path=None, scale_factor: float = SCALE_FACTOR,
                 min_neighbors: int = MIN_NEIGHBORS, min_size=MIN_SIZE):
        cv2 = _cv2()
        self.cascade_path = Path(cascade_path) if cascade_path is not None else default_cascade_path()
        if not self.cascade_path.is_file():
            raise QsimError(f"cascade file {self.cascade_path} not found")
        try:
            self._classifier = _cascade_class(cv2)(str(self.cascade_path))
            failed = self._classifier.empty()
        except (cv2.error, SystemError) as exc:  # OpenCV raises on a malformed XML
            raise QsimError(f"cascade file {self.cascade_path} could not be loaded by OpenCV: {exc}") from exc
        if failed:
            raise QsimError(f"cascade file {self.cascade_path} could not be loaded by OpenCV")
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = tuple(int(v) for v in min_size)

    def settings(self) -> dict:
        return {
            "cascade": self.cascade_path.name,
            "scale_factor": self.scale_factor,
            "min_neighbors": self.min_neighbors,
            "min_size": list(self.min_size),
            "colour": "greyscale",
        }

    def __call__(self, image):
        cv2 = _cv2()
        img = check_image(image)
        if img.ndim != 3:
            raise QsimError(f"Viola-Jones takes one (H, W, 3) image; got shape {img.shape}")
        grey = cv2.cvtColor(np.ascontiguousarray(img, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
        rects, _levels, weights = self._classifier.detectMultiScale3(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=self.min_size,
            outputRejectLevels=True,
        )
        rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(weights, dtype=np.float64).reshape(-1)
        boxes = np.stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2], rects[:, 1] + rects[:, 3]], axis=1)
        order = np.argsort(-scores, kind="stable")
        return boxes[order], scores[order]
