"""Ground truth of a face dataset: one `FaceImage` per picture, gathered in a `FaceDataset`.

Boxes are ``[x1, y1, x2, y2]`` float64 in original-image pixels (edges at integers). A box
flagged ``ignore`` neither counts as a face to find nor turns a detection on it into a false
positive (WIDER's ``invalid`` faces, for example).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qsim.errors import InputError


def read_annotation_lines(path, what: str) -> list[str]:
    """The lines of an annotation text file; `InputError` naming `what` and the file otherwise."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise InputError(f"{what} {path} not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what} {path}: {exc}") from exc


@dataclass(frozen=True)
class FaceImage:
    """One annotated picture.

    Attributes:
        name: the dataset's own key (FDDB ``2002/08/11/big/img_591``, WIDER ``0--Parade/x.jpg``).
        path: the image file.
        boxes: ``(N, 4)`` gt boxes x1y1x2y2.
        ignore: ``(N,)`` bool, True for boxes that are neither required nor penalised.
        extra: ``(N, k)`` per-box source fields (FDDB ellipse, WIDER attributes), or None.
    """

    name: str
    path: Path
    boxes: np.ndarray
    ignore: np.ndarray
    extra: np.ndarray | None = None

    @property
    def n_faces(self) -> int:
        """Faces that count (boxes not ignored)."""
        return int((~self.ignore).sum())


@dataclass
class FaceDataset:
    """Images found on disk, plus the names listed by the annotations but absent.

    Attributes:
        name: e.g. ``"fddb"`` or ``"wider-val"``.
        images: annotated images present on disk, in annotation order.
        missing: names listed in the annotations whose image file is absent.
        missing_faces: number of faces on those absent images.
    """

    name: str
    images: list[FaceImage]
    missing: list[str] = field(default_factory=list)
    missing_faces: int = 0

    @property
    def n_faces(self) -> int:
        return sum(im.n_faces for im in self.images)

    def __len__(self) -> int:
        return len(self.images)

    def limit(self, n: int | None) -> "FaceDataset":
        """The first ``n`` images (annotation order), for quick runs."""
        if n is None or n >= len(self.images):
            return self
        return FaceDataset(self.name, self.images[:n], self.missing, self.missing_faces)

    def summary(self) -> str:
        return (
            f"{self.name}: {len(self.images)} images, {self.n_faces} faces present; "
            f"{len(self.missing)} listed images absent on disk ({self.missing_faces} faces) skipped"
        )
