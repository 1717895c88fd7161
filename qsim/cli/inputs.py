"""Model inputs of ``qsim run / compare / profile``: images (``--preprocess``) or an array (``--input``).

* ``--input X.npy``: a NumPy array, batch first, of any rank the model takes: (N, 640)
  features, (N, 30, 1, 40) spectrograms, (N, H, W, 3) already preprocessed images. Numeric
  dtypes are converted to float32 as they are (no preprocessing); the shape is checked
  against the model's input (`qsim.runtime.walker.check_input`), every failure a one-line
  `InputError` naming the file.
* ``--preprocess`` maps image pixels (RGB, 0..255) to the network input:

  ==============  ==========================  ==========================================
  name            input                       for
  ==============  ==========================  ==========================================
  ``mobilenet``   ``x / 127.5 - 1`` (default)  MobileNetV2 backbones (the face detector)
  ``unit``        ``x / 255``                  e.g. MLPerf Tiny vww_96
  ``raw``         ``x``                        e.g. ResNet-8, Keras Applications with a
                                               Rescaling layer inside
  ``mean-std:M,S``  ``(x - M) / S``            any mean/std normalisation (scalars)
  ==============  ==========================  ==========================================
"""
from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qsim.errors import InputError, QsimError

PREPROCESS_NAMES = ("mobilenet", "unit", "raw", "mean-std:M,S")


@dataclass(frozen=True)
class Preprocess:
    """Pixel (0..255, float32) -> network input: ``(x - mean) / std``, or MobileNet's exact rule."""

    name: str
    mean: float = 0.0
    std: float = 1.0

    def __call__(self, img: np.ndarray) -> np.ndarray:
        from qsim.images import mobilenet_preprocess

        if self.name == "mobilenet":  # the exact float32 expression of today's default
            return mobilenet_preprocess(img)
        x = np.asarray(img, dtype=np.float32)
        return ((x - np.float32(self.mean)) / np.float32(self.std)).astype(np.float32)


def parse_preprocess(text: str) -> Preprocess:
    """``mobilenet`` | ``unit`` | ``raw`` | ``mean-std:M,S`` (argparse type)."""
    low = text.strip().lower()
    if low == "mobilenet":
        return Preprocess("mobilenet", 127.5, 127.5)
    if low == "unit":
        return Preprocess("unit", 0.0, 255.0)
    if low == "raw":
        return Preprocess("raw")
    if low.startswith("mean-std:"):
        parts = low.split(":", 1)[1].split(",")
        try:
            mean, std = (float(v) for v in parts)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--preprocess {text!r}: expected mean-std:M,S with two numbers, "
                                             "e.g. mean-std:127.5,64") from None
        if not (np.isfinite(mean) and np.isfinite(std)) or std == 0:
            raise argparse.ArgumentTypeError(f"--preprocess {text!r}: M and S must be finite and S non-zero")
        return Preprocess(f"mean-std:{mean:g},{std:g}", mean, std)
    raise argparse.ArgumentTypeError(f"--preprocess {text!r}: use one of {', '.join(PREPROCESS_NAMES)}")


def add_input_arguments(p: argparse.ArgumentParser, source: Any) -> None:
    """``--input X.npy`` (into the mutually exclusive group `source`, beside the images) and ``--preprocess``."""
    source.add_argument("--input", metavar="X.npy",
                        help="a NumPy array, batch first, of any rank the model takes (already preprocessed)")
    p.add_argument("--preprocess", type=parse_preprocess, default="mobilenet", metavar="RULE",
                   help="image pixels -> network input: mobilenet (x/127.5-1), unit (x/255), raw, "
                        "mean-std:M,S ((x-M)/S) (mobilenet)")


def load_array(path: str | Path, graph: Any) -> np.ndarray:
    """``--input``: the array in ``path`` as a float32 batch the model's input accepts."""
    from qsim.cli.files import check_input_file
    from qsim.runtime.walker import check_input

    path = check_input_file(path, "input file")
    if path.suffix.lower() != ".npy":
        raise InputError(f"--input {path}: expected a .npy file (numpy.save), got {path.suffix or 'no suffix'}")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"--input {path}: not a readable .npy array ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'truncated?'})") from None
    if x.dtype.kind not in "iuf":
        raise InputError(f"--input {path}: dtype {x.dtype}; expected a numeric (int or float) array")
    inputs = graph.inputs
    if len(inputs) != 1:
        raise InputError(f"--input {path}: the model has {len(inputs)} inputs; --input feeds one")
    shape = tuple(inputs[0].attrs["shape"])
    if x.ndim != len(shape) + 1:
        want = ", ".join("?" if d is None else str(d) for d in shape)
        raise InputError(f"--input {path}: shape {x.shape}; model input {inputs[0].name!r} takes "
                         f"(N, {want}) (batch first)")
    try:
        return check_input(inputs[0], x.astype(np.float32), np.float32)
    except QsimError as exc:
        raise InputError(f"--input {path}: {exc}") from None


def samples(x: np.ndarray) -> Iterator[np.ndarray]:
    """The batch ``x`` one sample at a time, each a batch of one."""
    for i in range(x.shape[0]):
        yield x[i:i + 1]


def image_model_check(graph: Any) -> None:
    """Images need a model taking (H, W, C) inputs; otherwise point at ``--input``."""
    for node in graph.inputs:
        shape = tuple(node.attrs["shape"])
        if len(shape) != 3:
            raise InputError(f"model {graph.name!r} input {node.name!r} has shape {shape}, not an image "
                             "(H, W, C): pass the data with --input X.npy")
