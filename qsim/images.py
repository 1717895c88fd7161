"""Image input: load, resize, MobileNetV2 preprocessing, folder listing, shape checks.

Contract:
    * `load_image` returns ``uint8 (H, W, 3)`` RGB whatever the file holds (greyscale,
      palette, RGBA and 16-bit images are converted by PIL; alpha is dropped).
    * `resize_bilinear` samples with *half-pixel centres*: output pixel ``o`` reads the
      input at ``(o + 0.5) * in / out - 0.5``, clamped to ``[0, in - 1]``, and linearly
      interpolates its two neighbours per axis. That is ``tf.image.resize(method="bilinear",
      antialias=False)`` (and ``cv2.INTER_LINEAR``); unlike PIL's ``BILINEAR`` it does not
      low-pass filter when shrinking, so a 2x downscale averages 2x2 blocks exactly.
    * `mobilenet_preprocess` maps ``[0, 255]`` to ``[-1, 1]``: ``x / 127.5 - 1``
      (Keras ``mobilenet_v2.preprocess_input``).

Every bad input (unreadable file, wrong rank or channel count, NaN) raises `InputError`
naming the file or the shape.

Pixel limit: `load_image` refuses a picture of more than `max_pixels()` pixels, read from
the file's header before anything is decoded (a 27 KB PNG can claim 15000x15000). The limit
is `DEFAULT_MAX_PIXELS` (32 megapixels: ``qsim run`` on a fully convolutional model needs
about 160 bytes per input pixel, so 5 GB) unless ``$QSIM_MAX_PIXELS`` (or the CLI's
``--max-pixels N``, which sets it) says otherwise; ``0`` means no limit. PIL's own
decompression-bomb guard is lifted to the same limit.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from qsim.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DEFAULT_MAX_PIXELS = 32_000_000
MAX_PIXELS_ENV = "QSIM_MAX_PIXELS"


def max_pixels() -> int | None:
    """The largest picture `load_image` decodes (pixels; None = no limit), from ``$QSIM_MAX_PIXELS``."""
    import os

    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{MAX_PIXELS_ENV}={text!r} is not a whole number of pixels") from None
    if value < 0:
        raise InputError(f"{MAX_PIXELS_ENV}={value} must be >= 0 (0 = no limit)")
    return value or None


def _check_pixels(path: Path, w: int, h: int, limit: int | None) -> None:
    if limit is not None and w * h > limit:
        raise InputError(
            f"image {path} is {w}x{h} = {w * h / 1e6:.3g} megapixels, over the limit of {limit} pixels "
            f"({limit / 1e6:.3g} megapixels); raise it with --max-pixels N or {MAX_PIXELS_ENV}=N (0 = no limit)"
        )


def load_image(path) -> np.ndarray:
    """Read an image file as RGB.

    Args:
        path: a JPEG/PNG (anything PIL reads).

    Returns:
        ``uint8`` array ``(H, W, 3)``.

    Raises:
        InputError: the file is missing or not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise InputError(f"image {path} is a directory, expected a JPEG/PNG file")
    limit = max_pixels()
    pil_limit = Image.MAX_IMAGE_PIXELS
    # PIL warns, then refuses (DecompressionBombError), above its MAX_IMAGE_PIXELS inside open():
    # the header check below replaces its guard, so a limit has one message and no limit is none
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as im:
            _check_pixels(path, im.size[0], im.size[1], limit)
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16/32-bit greyscale: PIL's convert("RGB") clips instead of scaling.
                arr = np.asarray(im, dtype=np.float64)
                top = 65535.0 if im.mode.startswith("I;16") else max(float(arr.max()), 1.0)
                grey = np.clip(np.round(arr * 255.0 / top), 0, 255).astype(np.uint8)
                return np.repeat(grey[:, :, None], 3, axis=2)
            rgb = im.convert("RGB")
    except InputError:
        raise
    except FileNotFoundError as exc:
        raise InputError(f"image file {path} not found") from exc
    except Image.DecompressionBombError as exc:  # only if PIL's limit was changed meanwhile
        raise InputError(f"image {path}: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise InputError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit
    arr = np.asarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"image {path} decoded to an unusable shape {arr.shape}")
    return np.ascontiguousarray(arr)


def check_image(x, expected_channels: int = 3) -> np.ndarray:
    """Validate an image tensor ``(H, W, C)`` or a batch ``(N, H, W, C)``.

    Args:
        x: array-like image.
        expected_channels: required size of the last axis.

    Returns:
        ``x`` as a NumPy array (not copied when already one).

    Raises:
        InputError: wrong rank, channel count, empty axis, non-numeric dtype or NaN/Inf.

    >>> check_image(np.zeros((4, 5, 3))).shape
    (4, 5, 3)
    >>> check_image(np.zeros((4, 5)))
    Traceback (most recent call last):
    ...
    qsim.errors.InputError: image must be (H, W, 3) or (N, H, W, 3); got shape (4, 5)
    """
    arr = np.asarray(x)
    want = f"(H, W, {expected_channels}) or (N, H, W, {expected_channels})"
    if arr.ndim not in (3, 4) or arr.shape[-1] != expected_channels:
        raise InputError(f"image must be {want}; got shape {tuple(arr.shape)}")
    if min(arr.shape) == 0:
        raise InputError(f"image has an empty axis: shape {tuple(arr.shape)}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"image must hold integers or floats; got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise InputError(f"image holds {bad} NaN/Inf value(s); shape {tuple(arr.shape)}")
    return arr


def _axis_weights(n_in: int, n_out: int):
    """Half-pixel-centre sampling along one axis: (lower index, upper index, upper weight)."""
    pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0.0, n_in - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, pos - lo


def resize_bilinear(img, size) -> np.ndarray:
    """Bilinear resize with half-pixel centres (``tf.image.resize`` bilinear, no antialias).

    Args:
        img: ``(H, W, C)`` array (any numeric dtype).
        size: ``(h, w)`` of the output.

    Returns:
        ``float32 (h, w, C)``; values are not rounded (a uint8 input gives fractional values).

    >>> x = np.array([[0, 10], [20, 30]], dtype=np.uint8)[:, :, None]
    >>> resize_bilinear(x, (4, 4))[:, :, 0]
    array([[ 0. ,  2.5,  7.5, 10. ],
           [ 5. ,  7.5, 12.5, 15. ],
           [15. , 17.5, 22.5, 25. ],
           [20. , 22.5, 27.5, 30. ]], dtype=float32)
    """
    arr = np.asarray(img)
    if arr.ndim != 3 or min(arr.shape) == 0:
        raise InputError(f"resize_bilinear needs a non-empty (H, W, C) image; got shape {arr.shape}")
    try:
        out_h, out_w = (int(s) for s in size)
    except (TypeError, ValueError) as exc:
        raise InputError(f"resize size must be (h, w); got {size!r}") from exc
    if out_h <= 0 or out_w <= 0:
        raise InputError(f"resize size must be positive; got {(out_h, out_w)}")
    src = arr.astype(np.float64)
    y0, y1, wy = _axis_weights(arr.shape[0], out_h)
    x0, x1, wx = _axis_weights(arr.shape[1], out_w)
    wy = wy[:, None, None]
    wx = wx[None, :, None]
    rows = src[y0] * (1.0 - wy) + src[y1] * wy  # (out_h, W, C)
    out = rows[:, x0] * (1.0 - wx) + rows[:, x1] * wx
    return out.astype(np.float32)


def mobilenet_preprocess(img) -> np.ndarray:
    """MobileNetV2 input scaling: ``x / 127.5 - 1`` as float32 (0 -> -1, 255 -> 1).

    >>> mobilenet_preprocess(np.array([0, 127.5, 255])).tolist()
    [-1.0, 0.0, 1.0]
    """
    return (np.asarray(img, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)).astype(np.float32)


def list_images(folder, n: int | None = None, seed: int = 0) -> list[Path]:
    """JPEG/PNG files under ``folder`` (recursive), sorted by path.

    Args:
        folder: directory to search.
        n: if given and smaller than the count, a subsample of ``n`` files chosen with
            ``random.Random(seed)`` (deterministic), returned in sorted order.
        seed: seed of the subsample.

    Raises:
        InputError: ``folder`` is not a directory, or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"image folder {folder} not found")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"no .jpg/.png images under {folder}")
    if n is not None:
        if n <= 0:
            raise InputError(f"number of images must be positive; got {n}")
        if n < len(files):
            files = sorted(random.Random(seed).sample(files, n))
    return files


def prepare_input(path_or_array, size=None) -> np.ndarray:
    """Network input from a file or an RGB array: load, optional resize, preprocess.

    Args:
        path_or_array: image path, or an ``(H, W, 3)`` array of ``[0, 255]`` values.
        size: optional ``(h, w)`` for `resize_bilinear`.

    Returns:
        ``float32 (H, W, 3)`` in ``[-1, 1]`` (add the batch axis yourself).
    """
    if isinstance(path_or_array, (str, Path)):
        img = load_image(path_or_array)
    else:
        img = check_image(path_or_array)
        if img.ndim != 3:
            raise InputError(f"prepare_input takes one (H, W, 3) image; got shape {img.shape}")
    if size is not None:
        img = resize_bilinear(img, size)
    return mobilenet_preprocess(img)
