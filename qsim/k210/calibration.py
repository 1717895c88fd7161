"""Calibration data for the K210 quantizer, read from a path the user names (never found on disk).

`load_calibration(path, count, input_hw)`:

* a folder: ``count`` JPEG/PNG images (`qsim.images.list_images`: sorted, then a seeded
  sample, the same on every machine), resized (half-pixel bilinear) to ``input_hw`` and
  scaled ``x / 127.5 - 1`` (the preprocessing of every qsim face model): an NHWC batch;
* a ``.npy`` file: an NHWC float batch already preprocessed for the model;
* any other file: a range table (`qsim.k210.executor.save_ranges`), returned as its path
  for the backend to read and check.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from qsim.errors import InputError

DEFAULT_COUNT = 8
DEFAULT_HW = (224, 224)  # for fully convolutional models (no fixed input size)


def calibration_hw(graph, size: tuple[int, int] | None = None) -> tuple[int, int]:
    """The size calibration images are resized to: the model's fixed input, else `size`, else 224x224."""
    shape = graph.inputs[0].attrs.get("shape") or (None, None, 3)
    if shape[0] and shape[1]:
        return int(shape[0]), int(shape[1])
    return tuple(size) if size else DEFAULT_HW


def load_calibration(path: "str | Path", count: int = DEFAULT_COUNT, input_hw: tuple[int, int] = DEFAULT_HW):
    """What `path` names, as the k210 backend's ``calibration=`` (see the module doc)."""
    path = Path(path)
    if path.is_dir():
        from qsim.images import list_images, load_image, mobilenet_preprocess, resize_bilinear

        if count < 1:
            raise InputError(f"calibration count must be >= 1, got {count}")
        paths = list_images(path, n=count)
        if not paths:
            raise InputError(f"calibration folder {path}: no JPEG/PNG image in it")
        batch = [mobilenet_preprocess(resize_bilinear(load_image(p), tuple(input_hw))) for p in paths]
        return np.stack(batch).astype(np.float32)
    if not path.is_file():
        raise InputError(f"calibration {path}: no such file or folder")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:
            raise InputError(f"calibration {path}: not a NumPy array file ({exc})") from None
        if arr.dtype.kind != "f" or arr.ndim != 4:
            raise InputError(f"calibration {path}: expected a float NHWC batch, got {arr.dtype} {arr.shape}")
        return arr.astype(np.float32)
    return path
