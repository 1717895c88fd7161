"""qsim.images: loading, half-pixel bilinear resize (checked against TensorFlow), preprocessing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import qsim
from qsim.errors import InputError
from qsim.images import (
    check_image,
    list_images,
    load_image,
    mobilenet_preprocess,
    prepare_input,
    resize_bilinear,
)


def _slow_resize(img, out_h, out_w):
    """Per-pixel reference: half-pixel centres, clamp, 2x2 lerp (plain Python floats)."""
    in_h, in_w, ch = img.shape
    out = np.zeros((out_h, out_w, ch))
    for i in range(out_h):
        y = min(max((i + 0.5) * in_h / out_h - 0.5, 0.0), in_h - 1)
        y0 = int(y)
        y1 = min(y0 + 1, in_h - 1)
        fy = y - y0
        for j in range(out_w):
            x = min(max((j + 0.5) * in_w / out_w - 0.5, 0.0), in_w - 1)
            x0 = int(x)
            x1 = min(x0 + 1, in_w - 1)
            fx = x - x0
            for c in range(ch):
                top = float(img[y0, x0, c]) * (1 - fx) + float(img[y0, x1, c]) * fx
                bot = float(img[y1, x0, c]) * (1 - fx) + float(img[y1, x1, c]) * fx
                out[i, j, c] = top * (1 - fy) + bot * fy
    return out


@given(
    st.integers(1, 9), st.integers(1, 9), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**31 - 1)
)
def test_resize_matches_slow_reference(in_h, in_w, out_h, out_w, seed):
    img = np.random.default_rng(seed).integers(0, 256, (in_h, in_w, 2)).astype(np.uint8)
    got = resize_bilinear(img, (out_h, out_w))
    assert got.dtype == np.float32 and got.shape == (out_h, out_w, 2)
    np.testing.assert_allclose(got, _slow_resize(img, out_h, out_w), rtol=0, atol=1e-4)


def test_resize_halving_averages_2x2_blocks():
    img = np.arange(4 * 6 * 1, dtype=np.uint8).reshape(4, 6, 1)
    got = resize_bilinear(img, (2, 3))
    want = img.reshape(2, 2, 3, 2, 1).astype(float).mean(axis=(1, 3))
    np.testing.assert_array_equal(got, want.astype(np.float32))


def test_resize_matches_tensorflow(tf):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (37, 53, 3)).astype(np.uint8)
    for size in [(18, 26), (74, 106), (50, 20), (37, 53)]:
        want = tf.image.resize(img.astype(np.float32), size, method="bilinear", antialias=False).numpy()
        np.testing.assert_allclose(resize_bilinear(img, size), want, rtol=0, atol=1e-3)


def test_resize_rejects_bad_size():
    with pytest.raises(InputError, match="positive"):
        resize_bilinear(np.zeros((4, 4, 3)), (0, 3))
    with pytest.raises(InputError, match=r"\(H, W, C\)"):
        resize_bilinear(np.zeros((4, 4)), (2, 2))


def test_preprocess_endpoints():
    x = mobilenet_preprocess(np.array([0, 255], dtype=np.uint8))
    assert x.dtype == np.float32 and x.tolist() == [-1.0, 1.0]


def test_load_image_converts_modes(tmp_path):
    rgba = np.zeros((5, 7, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 10
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    Image.fromarray(np.full((5, 7), 77, dtype=np.uint8), "L").save(tmp_path / "g.jpg", quality=100)
    Image.fromarray(np.full((3, 2), 65535, dtype=np.uint16)).save(tmp_path / "w.png")
    a = load_image(tmp_path / "a.png")
    assert a.shape == (5, 7, 3) and a.dtype == np.uint8 and a[0, 0].tolist() == [200, 0, 0]
    g = load_image(tmp_path / "g.jpg")
    assert g.shape == (5, 7, 3) and abs(int(g[2, 2, 0]) - 77) <= 1 and (g[..., 0] == g[..., 2]).all()
    w = load_image(tmp_path / "w.png")
    assert w.shape == (3, 2, 3) and (w == 255).all()


def test_load_image_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(InputError, match="broken.jpg"):
        load_image(bad)
    with pytest.raises(InputError, match="missing.png"):
        load_image(tmp_path / "missing.png")


def test_check_image():
    assert check_image(np.zeros((1, 4, 4, 3))).shape == (1, 4, 4, 3)
    with pytest.raises(InputError, match="got shape"):
        check_image(np.zeros((4, 4, 4)))
    with pytest.raises(InputError, match="NaN"):
        check_image(np.full((2, 2, 3), np.nan))
    with pytest.raises(InputError, match="empty"):
        check_image(np.zeros((0, 2, 3)))
    with pytest.raises(InputError, match="dtype"):
        check_image(np.full((2, 2, 3), "a"))
    assert check_image(np.zeros((2, 2, 1)), expected_channels=1).shape == (2, 2, 1)


def test_list_images_sorted_recursive_deterministic(tmp_path):
    (tmp_path / "sub").mkdir()
    names = ["b.jpg", "a.PNG", "sub/c.jpeg", "sub/d.png", "notes.txt"]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    all_files = list_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in all_files] == ["a.PNG", "b.jpg", "sub/c.jpeg", "sub/d.png"]
    pick = list_images(tmp_path, n=2, seed=5)
    assert pick == list_images(tmp_path, n=2, seed=5) and len(pick) == 2 and pick == sorted(pick)
    assert list_images(tmp_path, n=10) == all_files
    with pytest.raises(InputError, match="not found"):
        list_images(tmp_path / "missing_dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .jpg"):
        list_images(tmp_path / "empty")


def test_prepare_input(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (8, 10, 3)).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "x.png")
    x = prepare_input(tmp_path / "x.png", size=(4, 5))
    assert x.shape == (4, 5, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x, resize_bilinear(img, (4, 5)) / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(prepare_input(img), mobilenet_preprocess(img))
    with pytest.raises(InputError):
        prepare_input(np.zeros((1, 4, 4, 3)))


def _png_header(path, w: int, h: int) -> None:
    """A PNG whose header claims w x h greyscale pixels (a few bytes of data: never decoded)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
                     + chunk(b"IEND", b""))


def test_pixel_limit_checked_from_the_header_issue17(tmp_path, monkeypatch):
    """Issue 17 #8: 15000x15000 (PIL's decompression-bomb error) and 8000x8000 (no guard, ~10 GB
    in `run`) are refused before decoding, with the limit and how to raise it."""
    from qsim.images import DEFAULT_MAX_PIXELS

    monkeypatch.delenv("QSIM_MAX_PIXELS", raising=False)
    bomb, big = tmp_path / "bomb.png", tmp_path / "big.png"
    _png_header(bomb, 15000, 15000)
    _png_header(big, 8000, 8000)
    assert 8000 * 8000 > DEFAULT_MAX_PIXELS
    for path, mp in ((bomb, "225"), (big, "64")):
        with pytest.raises(InputError, match=rf"{path.name}.*{mp}(\.0)? megapixels.*--max-pixels.*QSIM_MAX_PIXELS"):
            load_image(path)
    monkeypatch.setenv("QSIM_MAX_PIXELS", "100")
    with pytest.raises(InputError, match="over the limit of 100 pixels"):
        load_image(_small_png(tmp_path))
    monkeypatch.setenv("QSIM_MAX_PIXELS", "lots")
    with pytest.raises(InputError, match="QSIM_MAX_PIXELS.*'lots'"):
        load_image(_small_png(tmp_path))
    # raising the limit above PIL's own reaches the decoder (which then fails on the fake data)
    monkeypatch.setenv("QSIM_MAX_PIXELS", str(300_000_000))
    with pytest.raises(InputError, match="cannot read image"):
        load_image(bomb)


def _small_png(tmp_path):
    from PIL import Image

    p = tmp_path / "small.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(p)
    return p


def test_max_pixels_flag_and_directory_message(tmp_path, capsys):
    from qsim.cli import main

    img = _small_png(tmp_path)
    model = str(Path(qsim.__file__).parent / "assets" / "a98_alpha1.0.h5")
    assert main(["run", model, str(img), "--format", "fp32", "--max-pixels", "100"]) == 1
    assert "over the limit of 100 pixels" in capsys.readouterr().err
    assert main(["run", model, str(tmp_path), "--format", "fp32"]) == 1  # a folder given as the image
    err = capsys.readouterr().err
    assert "is a directory" in err and "not found" not in err
