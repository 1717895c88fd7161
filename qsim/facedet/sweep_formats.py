"""The sweep's rows: the number formats of `qsim.analysis.formats`, and two self-contained detectors.

Besides the network rows (``fp32``, ``fp16``, ``q9``, a plan, ``k210``, ``tflite:F``), a
face-detection sweep measures detectors that run on the picture without MODEL or pyramid:

=================  ==================================================================
``vj``             the OpenCV Viola-Jones baseline (`qsim.facedet.viola_jones`), greyscale
``kmodel:PATH``    a kmodel v3 YOLOv2 face detector (e.g. the vendor's ``detect.kmodel``) run
                   bit-exactly by `qsim.k210.kmodel_v3_exec` on the picture resized to its
                   input, decoded with its own NMS (`qsim.facedet.region`; docs/k210-v3.md)
=================  ==================================================================

A detector row's `detector(score_threshold)` returns ``f(image) -> (boxes, scores)`` after its
own NMS.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from qsim.analysis import formats
from qsim.analysis.formats import NumberFormat
from qsim.analysis.store import file_sha256
from qsim.errors import InputError

KMODEL_PREFIX = "kmodel:"


@dataclass
class DetectorFormat(NumberFormat):
    """A row that detects faces on the picture itself (no graph, no pyramid, its own NMS)."""

    needs_model: ClassVar[bool] = False

    def size(self, graph: Any) -> tuple[int | None, int | None]:
        return None, None

    def detector(self, score_threshold: float = 0.0):
        """``f(image) -> (boxes, scores)`` after the detector's own NMS, scores >= ``score_threshold``."""
        raise NotImplementedError


@dataclass
class ViolaJonesFormat(DetectorFormat):
    @property
    def mode(self) -> str:
        return "-"

    def key_doc(self) -> dict:
        from qsim.facedet.viola_jones import MIN_NEIGHBORS, MIN_SIZE, SCALE_FACTOR

        try:
            import cv2

            cv_version = cv2.__version__
        except ImportError:
            cv_version = None
        return {**super().key_doc(), "vj": [SCALE_FACTOR, MIN_NEIGHBORS, list(MIN_SIZE), cv_version]}

    def check(self) -> None:
        self.detector()

    def detector(self, score_threshold: float = 0.0):  # keeps every box (scores: cascade level weights)
        from qsim.facedet.viola_jones import ViolaJones

        return ViolaJones()


@dataclass
class KmodelFormat(DetectorFormat):
    @property
    def path(self) -> str:
        return self.options["path"]

    @property
    def mode(self) -> str:
        return "k210 v3"

    def key_doc(self) -> dict:  # the file's content, not where it lies
        return {"executor": self.executor, "kmodel": file_sha256(self.path)[:16]}

    def check(self) -> None:
        self.detector()

    def size(self, graph: Any) -> tuple[int | None, int | None]:
        """Its own uint8 KPU weights, not the graph's."""
        from qsim.k210.kmodel_v3 import read_kmodel_v3

        n = sum(int(layer.body.weights.size) for layer in read_kmodel_v3(self.path).layers
                if layer.name == "k210_conv")
        return n, n

    def detector(self, score_threshold: float = 0.0):
        from qsim.facedet.region import RegionDetector

        region = RegionDetector(self.path)

        def detect(img):
            found = region(img, threshold=score_threshold)  # decoded with its own NMS
            return found.boxes, found.scores

        return detect


def parse_sweep_format(item: str, **options: Any) -> NumberFormat:
    """A network row (`qsim.analysis.formats.parse_format`) or a detector row (``vj``, ``kmodel:PATH``)."""
    low = item.lower()
    if low in ("vj", "viola_jones", "viola-jones"):
        return ViolaJonesFormat("vj", "viola_jones")
    if low.startswith(KMODEL_PREFIX):
        from qsim.k210.kmodel_v3 import kmodel_version

        path = item[len(KMODEL_PREFIX):]
        if not Path(path).is_file():
            raise InputError(f"format {item!r}: kmodel file {path} not found")
        if kmodel_version(path) != 3:
            raise InputError(f"format {item!r}: {path} is not a kmodel v3 (a YOLOv2 region detector "
                             "such as the vendor's detect.kmodel)")
        return KmodelFormat(f"kmodel:{Path(path).name}", "kmodel", options={"path": str(path)})
    try:
        return formats.parse_format(item, **options)
    except InputError as exc:
        if "or use" not in str(exc):
            raise
        raise InputError(f"{exc} (a sweep also takes vj and kmodel:PATH)") from None


def parse_formats(formats_: Any, *, mode: str = "weights", **options: Any) -> list[NumberFormat]:
    """Sweep rows from ``"fp32,fp16,q9,...,plan.json,k210,tflite:F,vj,kmodel:PATH"``.

    >>> [(f.name, f.executor, f.mode) for f in parse_formats("fp32,fp16,q9,Q6.9,vj")]
    [('fp32', 'float', 'float'), ('fp16', 'fp16', 'weights'), ('q9', 'weights', 'weights'), \
('q6.9', 'weights', 'weights'), ('vj', 'viola_jones', '-')]
    """
    return formats.parse_formats(formats_, mode=mode, parse=parse_sweep_format, **options)
