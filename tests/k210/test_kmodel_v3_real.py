"""The four public kmodel v3 files (kendryte-standalone-demo): they run, the face detector finds FDDB faces,
outputs are deterministic, defects give named errors, and ``qsim k210`` handles them like v4.

The files are looked up in ``$QSIM_KMODELS_V3`` or ``<data>/kmodels/`` (see docs/k210-v3.md for
their provenance); like the rest of ../shared/data they are required in CI.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from qsim.errors import QsimError
from qsim.facedet import region
from qsim.k210.kmodel_v3 import read_kmodel_v3
from qsim.k210.kmodel_v3_exec import KmodelV3Executor
from qsim.k210.kpu import KpuSwitches

# name -> (md5, K210_CONV layers, input (C, H, W), output floats)
MODELS = {
    "detect.kmodel": ("98a0dae65556ebcd072ab67fbc999fbe", 23, (3, 240, 320), 9000),
    "yolo.kmodel": ("24b38c985405a5e7273db602ab1ee996", 16, (3, 240, 320), 8750),
    "detect_5.kmodel": ("38e5fb8435313b0e9a8ebe36e14bcda1", 30, (3, 256, 320), 2800),
    "detect_9.kmodel": ("51f93b3ec41ad352354c4e5ccfb867e2", 30, (3, 256, 320), 5040),
}
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def v3_dir(data_dir) -> Path:
    env = os.environ.get("QSIM_KMODELS_V3")
    d = Path(env) if env else data_dir / "kmodels"
    missing = [n for n in MODELS if not (d / n).is_file()]
    if missing:
        why = f"kmodel v3 files {missing} not in {d} (docs/k210-v3.md says where they come from)"
        if IN_CI:
            pytest.fail(f"required in CI but missing: {why}")
        pytest.skip(why)
    return d


@pytest.fixture(scope="module")
def fddb(data_dir):
    from qsim.facedet.fddb import load_fddb

    return load_fddb().images


@pytest.fixture(scope="module")
def detector(v3_dir):
    return region.RegionDetector(v3_dir / "detect.kmodel")


def test_four_public_models_run(v3_dir, fddb):
    from qsim.facedet.ultraface import image_to_input
    from qsim.images import load_image

    rgb = load_image(fddb[0].path)
    pools = set()
    for name, (md5, n_conv, chw, n_out) in MODELS.items():
        data = (v3_dir / name).read_bytes()
        assert hashlib.md5(data).hexdigest() == md5, name
        m = read_kmodel_v3(data)
        assert m.op_counts() == {"k210_conv": n_conv, "dequantize": 1} and m.eight_bit_mode, name
        assert m.input_shapes == [(1, *chw)] and m.outputs[0].count == n_out, name
        pools |= {layer.body.args.pool_type for layer in m.layers if layer.name == "k210_conv"}
        out = KmodelV3Executor(m).run(image_to_input(rgb, chw[2], chw[1])).outputs[0]
        assert out.dtype == np.float32 and out.size == n_out and np.isfinite(out).all(), name
    assert pools == {0, 1, 5, 9}


def test_face_detector_finds_fddb_faces(detector, fddb):
    """On the first 12 FDDB pictures at the demo's threshold: 18 of 24 faces found at IoU >= 0.3, no false alarm."""
    from qsim.facedet.metrics import evaluate
    from qsim.images import load_image

    per = []
    for im in fddb[:12]:
        found = detector(load_image(im.path))
        assert found.scores.min(initial=1) > 0.7 and set(found.classes.tolist()) <= {0}
        per.append((found.boxes, found.scores, im.boxes, im.ignore))
    ev = evaluate(per, iou_threshold=0.3)
    assert (ev.n_gt, int(ev.tp[-1]), int(ev.fp[-1])) == (24, 18, 0)


def test_outputs_deterministic_across_runs_and_threads(v3_dir, fddb):
    import numba

    from qsim.facedet.ultraface import image_to_input
    from qsim.images import load_image

    x = image_to_input(load_image(fddb[2].path))
    threads = numba.get_num_threads()
    outs = []
    try:
        for n in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(n)
            ex = KmodelV3Executor(v3_dir / "detect.kmodel")
            outs += [ex.run(x).outputs[0].tobytes() for _ in range(2)]
    finally:
        numba.set_num_threads(threads)
    assert len(set(outs)) == 1


def test_activation_tie_rounding_is_observable(v3_dir, fddb):
    """The open point: v4-runtime ties-to-even vs nncase 0.1's half-up change output bytes of the v3 models."""
    from qsim.facedet.ultraface import image_to_input
    from qsim.images import load_image

    x = image_to_input(load_image(fddb[0].path))
    a = KmodelV3Executor(v3_dir / "detect.kmodel").run(x).outputs[0]
    b = KmodelV3Executor(v3_dir / "detect.kmodel", KpuSwitches(act_rounding="half_up")).run(x).outputs[0]
    assert (a != b).sum() > 100


def test_fuzz_real_file(v3_dir):
    data = (v3_dir / "detect.kmodel").read_bytes()
    m = read_kmodel_v3(data)
    x = np.random.default_rng(0).integers(0, 256, (3, 240, 320)).astype(np.uint8)
    cuts = [0, 3, 27, 100, 228, 300, m.layers[0].body.act_offset + 5, m.layers[5].body_offset + 7, len(data) - 30,
            len(data) - 1]
    for cut in cuts:
        with pytest.raises(QsimError, match=r"header|layer \d+|output"):
            read_kmodel_v3(data[:cut])
    # bit flips in the structure: header, tables, conv heads, register words, the dequantize body
    rng = np.random.default_rng(5)
    spots = list(range(228)) + [m.layers[-1].body_offset + i for i in range(24)]
    for layer in m.layers[:-1]:
        spots += [layer.body_offset + i for i in range(24)] + [layer.body.layer_offset + i for i in range(96)]
    ran = 0
    for _ in range(60):
        bad = bytearray(data)
        bad[int(rng.choice(spots))] ^= 1 << int(rng.integers(0, 8))
        try:
            KmodelV3Executor(read_kmodel_v3(bytes(bad))).run(x)
            ran += 1
        except QsimError as exc:
            assert any(w in str(exc) for w in ("layer ", "header", "output ", "field", "input")), str(exc)
    assert ran < 60  # most structural flips are caught


def test_cli_runs_v3_like_v4(v3_dir, fddb, tmp_path, capsys):
    from qsim.cli import main
    from qsim.facedet.ultraface import image_to_input
    from qsim.images import load_image

    x = image_to_input(load_image(fddb[1].path))
    raw, out, js = tmp_path / "in.npy", tmp_path / "out.npz", tmp_path / "rep.json"
    np.save(raw, x)
    model = str(v3_dir / "detect.kmodel")
    assert main(["k210", model, "--input", str(raw), "--save-outputs", str(out), "--json", str(js)]) == 0
    want = KmodelV3Executor(model).run(x).outputs[0]
    assert np.load(out)["output0"].tobytes() == want.tobytes()
    rep = json.loads(js.read_text())
    assert rep["qsim_k210"] == 1 and rep["kind"] == "kmodel" and rep["kmodel_version"] == 3
    assert len(rep["layers"]) == 24 and rep["layers"][0]["op"] == "k210_conv" and rep["layers"][0]["kpu_ram_in"] == 230400
    assert rep["outputs"][0]["dtype"] == "float32" and rep["outputs"][0]["shape"] == [9000]
    assert rep["alu_overflow_events"] == 0 and rep["activation_clamps"] > 0
    text = capsys.readouterr().out
    assert "kmodel v3, 24 layers" in text and "dequantize" in text
    assert main(["k210", model, "--image", str(fddb[1].path), "--quiet", "--act-rounding", "half_up"]) == 0
    assert "output0 main[9000:45000] float32" in capsys.readouterr().out


def test_yolo_voc_decode(v3_dir, fddb):
    """yolo.kmodel (20 VOC classes, 7x10 grid): a person on FDDB news pictures."""
    from qsim.images import load_image

    det = region.RegionDetector(v3_dir / "yolo.kmodel", region.YOLO_VOC)
    assert det.grid_hw == (7, 10)
    names = set()
    for im in fddb[:3]:
        found = det(load_image(im.path), threshold=0.3)
        names |= {region.VOC_CLASSES[c] for c in found.classes}
    assert "person" in names


def test_sweep_format_kmodel(v3_dir, fddb, data_dir, tmp_path):
    """``--formats kmodel:detect.kmodel``: an AP row from the region detector, no MODEL needed."""
    from qsim.errors import InputError
    from qsim.facedet.annotations import FaceDataset
    from qsim.facedet.metrics import evaluate
    from qsim.facedet.sweep import parse_formats, sweep
    from qsim.images import load_image

    path = str(v3_dir / "detect.kmodel")
    (fmt,) = parse_formats(f"kmodel:{path}")
    assert (fmt.name, fmt.executor, fmt.mode) == ("kmodel:detect.kmodel", "kmodel", "k210 v3")
    with pytest.raises(InputError, match="not a kmodel v3"):
        parse_formats(f"kmodel:{data_dir / 'kmodels' / 'slim-320.kmodel'}")
    with pytest.raises(InputError, match="not found"):
        parse_formats("kmodel:nowhere.kmodel")
    ds = FaceDataset("fddb", fddb[:5])
    row = sweep(None, ds, [fmt], cache_dir=tmp_path).rows[0]
    det = region.RegionDetector(path)
    per = []
    for im in ds.images:
        found = det(load_image(im.path), threshold=0.01)
        per.append((found.boxes, found.scores, im.boxes, im.ignore))
    assert row.ap == evaluate(per).ap and row.params == row.size_bytes > 0
    assert sweep(None, ds, [fmt], cache_dir=tmp_path).rows[0].cached_images == 5
