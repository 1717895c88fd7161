"""``qsim tflite``: reference run, --save-tensors, --json, --image, what-ifs, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from qsim.cli import main
from qsim.tflite import prepare, read_tflite, read_tflite_bytes


def test_reference_run_saves_every_tensor(tflite_model_path, tmp_path, tf, capsys):
    path = tflite_model_path("resnet8")
    x = np.random.default_rng(1).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    rc = main(["tflite", str(path), "--input", str(tmp_path / "x.npy"),
               "--save-tensors", str(tmp_path / "t.npz"), "--json", str(tmp_path / "r.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "CONV_2D" in out and "reference" in out
    m = read_tflite(path)
    saved = np.load(tmp_path / "t.npz")
    want_keys = {f"t{t.index}" for t in m.tensors if t.data is None}
    assert set(saved.files) == want_keys
    # the saved tensors are BUILTIN_REF's, in their stored dtype, input included
    it = tf.lite.Interpreter(model_content=path.read_bytes(),
                             experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
                             experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    it.set_tensor(m.inputs[0], saved[f"t{m.inputs[0]}"])
    it.invoke()
    for k in saved.files:
        want = it.get_tensor(int(k[1:]))
        assert saved[k].dtype == want.dtype
        np.testing.assert_array_equal(saved[k], want)
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["qsim_tflite"] == 1 and rep["options"]["acc_bits"] == 32
    assert [r["type"] for r in rep["layers"]][:2] == ["CONV_2D", "CONV_2D"]
    assert all(r["differ"] is None for r in rep["layers"])
    assert rep["outputs"][0]["dtype"] == "INT8"


def test_whatif_reports_differences(tflite_model_path, tmp_path, capsys):
    path = tflite_model_path("mobilenet")
    np.save(tmp_path / "x.npy", np.random.default_rng(2).integers(-128, 128, (1, 24, 24, 3)).astype(np.int8))
    rc = main(["tflite", str(path), "--input", str(tmp_path / "x.npy"), "--acc-bits", "14",
               "--acc-overflow", "saturate", "--json", str(tmp_path / "w.json")])
    assert rc == 0
    assert "what-if acc_bits=14, acc_overflow=saturate" in capsys.readouterr().out
    rep = json.loads((tmp_path / "w.json").read_text())
    conv0 = rep["layers"][0]
    assert conv0["counters"]["acc"]["events"] > 0 and conv0["differ"] > 0
    assert conv0["counters"]["acc"]["limit"] == 2**13


def test_image_input(tflite_model_path, tmp_path, capsys):
    from PIL import Image

    img = (np.indices((40, 30)).sum(0)[..., None] * np.array([3, 5, 7]) % 256).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "p.png")
    rc = main(["tflite", str(tflite_model_path("mobilenet")), "--image", str(tmp_path / "p.png"),
               "--preprocess", "unit", "--single-rounding"])
    assert rc == 0
    assert "single_rounding=True" in capsys.readouterr().out


def test_cli_errors(tflite_model_path, tmp_path, capsys):
    path = str(tflite_model_path("resnet8"))
    assert main(["tflite", path]) == 1
    assert "give --input X.npy or --image P" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.zeros((1, 3, 3, 3), np.int8))
    assert main(["tflite", path, "--input", str(tmp_path / "bad.npy")]) == 1
    assert "has shape [1, 16, 16, 3], got [1, 3, 3, 3] (only dimensions that are -1" in capsys.readouterr().err
    assert main(["tflite", path, "--image", str(tmp_path / "bad.npy")]) == 1
    assert "cannot read image" in capsys.readouterr().err
    (tmp_path / "junk.tflite").write_bytes(b"\x10\x00\x00\x00TFL3" + b"\xff" * 40)
    assert main(["tflite", str(tmp_path / "junk.tflite"), "--input", str(tmp_path / "bad.npy")]) == 1
    assert "junk.tflite" in capsys.readouterr().err
    assert main(["tflite", path, "--input", str(tmp_path / "bad.npy"), "--acc-bits", "1"]) == 1
    assert "acc_bits" in capsys.readouterr().err


def test_unsupported_op_names_op_index_and_list(tflite_model_bytes):
    m = read_tflite_bytes(tflite_model_bytes("opmix"), name="opmix.tflite")
    m.operators[3].code, m.operators[3].name = 41, "SUB"
    with pytest.raises(Exception) as ei:
        prepare(m)
    msg = str(ei.value)
    assert "operator 3 is SUB" in msg and "supported: ADD" in msg and "RESIZE_NEAREST_NEIGHBOR" in msg


def test_cli_runs_other_input_sizes(tflite_model_path, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.full((30, 50, 3), 90, np.uint8)).save(tmp_path / "p.png")
    path = str(tflite_model_path("mobilenet_dyn"))
    assert main(["tflite", path, "--image", str(tmp_path / "p.png"), "--size", "40x56",
                 "--save-tensors", str(tmp_path / "t.npz")]) == 0
    assert "[1, 20, 28, 8]" in capsys.readouterr().out  # first conv, stride 2, inferred
    saved = np.load(tmp_path / "t.npz")
    assert saved["t0"].shape == (1, 40, 56, 3)
    np.save(tmp_path / "x.npy", np.zeros((1, 24, 32, 3), np.int8))
    assert main(["tflite", path, "--input", str(tmp_path / "x.npy"), "--acc-bits", "20"]) == 0
