"""FDDB and WIDER readers on the real annotation files and on small hand-written ones."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.errors import InputError
from qsim.facedet.draw import draw_boxes, save_png
from qsim.facedet.fddb import ellipse_to_box, load_fddb, read_ellipse_list
from qsim.facedet.wider import load_wider, read_wider_gt
from qsim.images import load_image


def test_fddb_folds_counts(data_dir):
    total_images = total_faces = 0
    for k in range(1, 11):
        entries = read_ellipse_list(data_dir / "fddb" / "FDDB-folds" / f"FDDB-fold-{k:02d}-ellipseList.txt")
        total_images += len(entries)
        total_faces += sum(len(e) for _, e in entries)
    assert (total_images, total_faces) == (2845, 5171)  # the FDDB paper's counts


def test_fddb_present_and_missing(data_dir):
    present = load_fddb(data_dir / "fddb")
    assert len(present) == 225 and present.n_faces == 391 and present.missing == []
    folds = load_fddb(data_dir / "fddb", folds="all")
    assert len(folds) == 225 and folds.n_faces == 391
    assert len(folds.missing) == 2845 - 225 and folds.missing_faces == 5171 - 391
    assert [im.name for im in folds.images] == [im.name for im in present.images]
    first = present.images[0]
    assert first.name == "2002/07/19/big/img_423" and first.path.is_file()
    np.testing.assert_allclose(first.extra[0, :5], [87.080955, 59.379319, 1.550861, 255.383099, 133.767857])
    nine = load_fddb(data_dir / "fddb", folds=[9, 10])
    assert len(nine) == 0 and len(nine.missing) > 0
    assert "absent on disk" in folds.summary() and len(present.limit(5)) == 5


def test_ellipse_to_box_by_hand():
    # two_minor: minor radius 50 -> w_ellipse 100 -> side 130, centre y + 26
    box = ellipse_to_box(np.array([[70.0, 50.0, np.pi / 2, 300.0, 200.0, 1.0]]), rule="two_minor")
    np.testing.assert_allclose(box, [[235.0, 161.0, 365.0, 291.0]])
    np.testing.assert_allclose(ellipse_to_box([[70.0, 50.0, 0, 300.0, 200.0, 1]], alpha=1.0, beta=0.0, rule="two_minor"),
                               [[250.0, 150.0, 350.0, 250.0]])


def test_fddb_boxes_drawn(data_dir, tmp_path):
    """What was checked by eye (fddb.py docstring, default major_radius rule): a square about the
    face's width from the eyebrows to just above the chin. Here: the drawing puts cyan on the box
    edge, and each box holds its ellipse's centre in its upper half (the box moved down)."""
    ds = load_fddb(data_dir / "fddb").limit(4)
    for im in ds.images:
        img = load_image(im.path)
        out = draw_boxes(img, im.boxes, ellipses=im.extra)
        path = save_png(out, tmp_path / f"{im.name.replace('/', '_')}.png")
        assert path.stat().st_size > 0
        for (x1, y1, x2, y2), e in zip(im.boxes, im.extra):
            assert x2 - x1 == pytest.approx(y2 - y1)
            assert y1 < e[4] < (y1 + y2) / 2
            xi, yi = int(round((x1 + x2) / 2)), int(round(y1))
            if 0 <= yi < img.shape[0] and 0 <= xi < img.shape[1]:
                assert out[yi, xi].tolist() == [0, 255, 255]


def test_fddb_parse_errors(tmp_path):
    p = tmp_path / "bad-ellipseList.txt"
    p.write_text("img_1\n2\n1 1 0 5 5 1\n")
    with pytest.raises(InputError, match=r"bad-ellipseList.txt:4: .*1 of 2"):
        read_ellipse_list(p)
    p.write_text("img_1\nx\n")
    with pytest.raises(InputError, match=r":2: expected a face count"):
        read_ellipse_list(p)
    p.write_text("img_1\n1\n1 1 zero 5 5 1\n")
    with pytest.raises(InputError, match=r":3: .*not numeric"):
        read_ellipse_list(p)
    p.write_text("img_1\n1\n1 -1 0 5 5 1\n")
    with pytest.raises(InputError, match="radii"):
        read_ellipse_list(p)
    with pytest.raises(InputError, match="not found"):
        read_ellipse_list(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="folds"):
        load_fddb(tmp_path, folds=[11])


def test_wider_real_gt(data_dir):
    entries = read_wider_gt(data_dir / "wider" / "wider_face_split" / "wider_face_val_bbx_gt.txt")
    assert len(entries) == 3226 and sum(len(f) for _, f in entries) == 39708
    first_name, first = entries[0]
    assert first_name == "0--Parade/0_Parade_marchingband_1_465.jpg" and len(first) == 126
    assert first[0].tolist() == [345, 211, 4, 4, 2, 0, 0, 0, 2, 0]
    ds = load_wider(data_dir / "wider")
    assert len(ds) == 394 and len(ds.missing) == 3226 - 394
    assert sum(len(im.boxes) for im in ds.images) == 5289  # PROVENANCE.md
    kept = load_wider(data_dir / "wider", invalid="keep")
    dropped = load_wider(data_dir / "wider", invalid="drop")
    assert dropped.n_faces == ds.n_faces < kept.n_faces
    assert sum(len(im.boxes) for im in dropped.images) == dropped.n_faces


def test_wider_hand_made(tmp_path):
    split = tmp_path / "wider_face_split"
    images = tmp_path / "WIDER_val" / "images" / "ev"
    split.mkdir()
    images.mkdir(parents=True)
    (split / "wider_face_val_bbx_gt.txt").write_text(
        "ev/a.jpg\n2\n10 20 30 40 0 0 0 0 0 0 \n1 1 5 5 0 0 0 1 0 0 \n"
        "ev/empty.jpg\n0\n0 0 0 0 0 0 0 0 0 0 \n"
        "ev/absent.jpg\n1\n0 0 9 9 0 0 0 0 0 0 \n"
    )
    for name in ("a.jpg", "empty.jpg"):
        save_png(np.zeros((50, 60, 3), np.uint8), images / name)
    ds = load_wider(tmp_path, invalid="ignore", min_size=0)
    assert [im.name for im in ds.images] == ["ev/a.jpg", "ev/empty.jpg"] and ds.missing == ["ev/absent.jpg"]
    assert ds.missing_faces == 1
    a = ds.images[0]
    np.testing.assert_array_equal(a.boxes, [[10, 20, 40, 60], [1, 1, 6, 6]])
    assert a.ignore.tolist() == [False, True] and ds.images[1].boxes.shape == (0, 4)
    assert load_wider(tmp_path, invalid="drop").images[0].boxes.shape == (1, 4)
    assert load_wider(tmp_path, invalid="keep").images[0].ignore.tolist() == [False, False]
    assert load_wider(tmp_path, min_size=10).images[0].ignore.tolist() == [False, True]
    assert load_wider(tmp_path, invalid="keep", min_size=31).images[0].ignore.tolist() == [True, True]
    with pytest.raises(InputError, match="invalid"):
        load_wider(tmp_path, invalid="maybe")
    (split / "wider_face_val_bbx_gt.txt").write_text("ev/a.jpg\n1\n10 20 30\n")
    with pytest.raises(InputError, match=r"wider_face_val_bbx_gt.txt:3: .*10 numbers"):
        load_wider(tmp_path)


def test_draw_colours():
    img = np.zeros((40, 40, 3), np.uint8)
    out = draw_boxes(img, [[2, 2, 20, 20]], [[10, 15, 35, 35]], [0.87], width=1)
    assert out[2, 10].tolist() == [0, 255, 255]      # gt edge: cyan
    assert out[35, 20].tolist() == [0, 255, 0]       # detection edge: green
    assert img.sum() == 0                            # input untouched
    with pytest.raises(InputError):
        draw_boxes(np.zeros((4, 4)), [])
