"""``qsim k210`` on a kmodel: --input reproduces the golden bytes, --image runs, errors exit 1."""
from __future__ import annotations

import json

import numpy as np

from qsim.cli import main


def test_kmodel_input_raw_saves_golden_bytes(data_dir, tmp_path, capsys):
    golden = np.load(data_dir / "kmodels" / "slim-320-golden.npz")
    raw = tmp_path / "in.npy"
    np.save(raw, golden["inputs"][3])
    out, js = tmp_path / "out.npz", tmp_path / "rep.json"
    rc = main(["k210", str(data_dir / "kmodels" / "slim-320.kmodel"), "--input", str(raw),
               "--save-outputs", str(out), "--json", str(js)])
    assert rc == 0
    saved = np.load(out)
    assert saved["output0"].dtype == np.float32
    assert saved["output0"].tobytes() == golden["output0_bytes"][3].tobytes()
    assert saved["output1"].tobytes() == golden["output1_bytes"][3].tobytes()
    rep = json.loads(js.read_text())
    assert rep["qsim_k210"] == 1 and rep["kind"] == "kmodel" and len(rep["layers"]) == 73
    assert rep["layers"][0]["kpu_ram_in"] == 230400 and rep["alu_overflow_events"] == 0
    text = capsys.readouterr().out
    assert "kpu_conv2d" in text and "KPU RAM" in text


def test_kmodel_image(data_dir, capsys):
    img = next((data_dir / "fddb" / "originalPics").rglob("*.jpg"))
    assert main(["k210", str(data_dir / "kmodels" / "slim-320.kmodel"), "--image", str(img), "--quiet"]) == 0
    assert "output1" in capsys.readouterr().out


def test_errors_exit_1(data_dir, tmp_path, capsys):
    bad = tmp_path / "bad.kmodel"
    bad.write_bytes(b"LDMK" + b"\0" * 10)
    assert main(["k210", str(bad), "--input", "x.npy"]) == 1
    assert "truncated" in capsys.readouterr().err
    raw = tmp_path / "in.npy"
    np.save(raw, np.zeros((3, 10, 10), np.uint8))
    assert main(["k210", str(data_dir / "kmodels" / "slim-320.kmodel"), "--input", str(raw)]) == 1
    assert "(1, 3, 240, 320)" in capsys.readouterr().err


def test_keras_model(tf, data_dir, tmp_path, capsys):
    from reference.export import export_h5
    from reference.models import build_model

    path = export_h5(build_model("A", alpha=0.35, frozen=98, weights=None), tmp_path / "a98.h5")
    img = next((data_dir / "fddb" / "originalPics").rglob("*.jpg"))
    js = tmp_path / "rep.json"
    assert main(["k210", str(path), "--size", "96x96", "--image", str(img), "--quiet"]) == 1
    assert "needs --calib DIR" in capsys.readouterr().err
    rc = main(["k210", str(path), "--size", "96x96", "--calib", str(data_dir / "fddb" / "originalPics"),
               "--calib-count", "2", "--image", str(img), "--quiet", "--json", str(js)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "fits 2 MiB" in text and "FPS" in text and "cosine vs float" in text
    rep = json.loads(js.read_text())
    assert rep["kind"] == "keras" and rep["memory"]["fits"] and rep["run"]["outputs"][0]["cosine_vs_float"] > 0.9
    assert rep["quantization"]["kpu_layers"] > 30
