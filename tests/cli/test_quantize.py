"""``qsim quantize``: tensors from .h5 (legacy weights, full model, Keras 3), .npy, .npz;
the figures are checked against an independent recomputation with the Fraction reference."""
from __future__ import annotations

import json
import math
from fractions import Fraction

import h5py
import numpy as np
import pytest

from qsim.cli import main
from qsim.cli.quantize import read_tensors
from qsim.errors import ModelError
from qsim.fixed import QFormat
from qsim.fixed.ref import quantize_ref


def _legacy_weights_h5(path, kernel, bias):
    """The legacy Keras weights-only layout: root attrs layer_names, group attrs weight_names."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"conv", b"relu", b"dense"])
        conv = f.create_group("conv")
        conv.attrs["weight_names"] = np.array([b"conv/kernel:0", b"conv/bias:0"])
        conv.create_dataset("conv/kernel:0", data=kernel)
        conv.create_dataset("conv/bias:0", data=bias)
        f.create_group("relu").attrs["weight_names"] = np.array([], dtype="S1")
        dense = f.create_group("dense")
        dense.attrs["weight_names"] = np.array([b"dense/kernel:0", b"dense/step:0"])
        dense.create_dataset("dense/kernel:0", data=np.array([[0.5, -0.25]], dtype=np.float32))
        dense.create_dataset("dense/step:0", data=np.array([3], dtype=np.int64))


@pytest.fixture()
def small_h5(tmp_path):
    rng = np.random.default_rng(0)
    kernel = np.clip(rng.normal(0, 1, (3, 3, 2, 4)), -3.5, 3.5).astype(np.float32)
    kernel[0, 0, 0, 0] = 100.0  # overflows Q2.5 (max 3.97)
    bias = np.array([0.015625, -0.015625, 1 / 64 * 3, 0.0], dtype=np.float32)  # ties of Q2.5
    path = tmp_path / "small.h5"
    _legacy_weights_h5(path, kernel, bias)
    return path, kernel, bias


def _run(capsys, *argv):
    code = main(["quantize", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_and_json_match_reference(small_h5, tmp_path, capsys):
    path, kernel, bias = small_h5
    out_json = tmp_path / "r.json"
    code, out, err = _run(capsys, path, "--format", "Q2.5", "--rounding", "half_even",
                          "--overflow", "saturate", "--json", out_json)
    assert code == 0, err
    assert "| conv/kernel:0 | 3x3x2x4 |" in out and "| dense/kernel:0 | 1x2 |" in out
    assert "1 non-float datasets skipped" in out and "**total** 3 tensors, 78 values" in out
    doc = json.loads(out_json.read_text())
    assert doc["qsim_quantize"] == 1 and doc["skipped"] == [{"name": "dense/step:0", "dtype": "int64"}]
    (fmt_doc,) = doc["formats"]
    assert (fmt_doc["format"], fmt_doc["word_bits"], fmt_doc["lsb"]) == ("Q2.5", 8, 1 / 32)
    names = [t["name"] for t in fmt_doc["tensors"]]
    assert names == ["conv/kernel:0", "conv/bias:0", "dense/kernel:0"]  # Keras layer order
    fmt = QFormat.parse("Q2.5")
    for t, x in zip(fmt_doc["tensors"], [kernel, bias]):
        codes, (events, elements, max_abs) = quantize_ref(x.ravel().tolist(), fmt, "half_even", "saturate")
        errs = [Fraction(c, 32) - Fraction(float(v)) for c, v in zip(codes, x.ravel().tolist())]
        assert t["max_abs_error"] == float(max(abs(e) for e in errs))
        sse, ssx = sum(e * e for e in errs), sum(Fraction(float(v)) ** 2 for v in x.ravel().tolist())
        assert t["rms_error"] == pytest.approx(math.sqrt(sse / len(errs)), rel=1e-12)
        assert t["sqnr_db"] == pytest.approx(10 * math.log10(ssx / sse), rel=1e-12)
        assert (t["overflow"]["events"], t["overflow"]["elements"], t["overflow"]["max_abs"]) == (
            events, elements, max_abs)
    kern = fmt_doc["tensors"][0]
    assert kern["overflow"]["events"] == 1 and kern["int_bits_needed"] == 7
    assert kern["overflow"]["headroom_bits"] == pytest.approx(math.log2(128 / 3200))
    bias_doc = fmt_doc["tensors"][1]
    assert bias_doc["max_abs_error"] == 1 / 64  # ties: 0.5 LSB
    dense = fmt_doc["tensors"][2]
    assert dense["sqnr_db"] == "inf" and dense["max_abs_error"] == 0.0
    assert fmt_doc["totals"]["overflow"]["events"] == 1 and fmt_doc["totals"]["tensors_overflowing"] == 1


def test_several_formats_and_rounding_modes(small_h5, capsys):
    path, _, _ = small_h5
    code, out, _ = _run(capsys, path, "--formats", "Q9, q8 ,ap_fixed<8,3>", "--rounding", "floor",
                        "--overflow", "wrap")
    assert code == 0
    for title in ("### Q6.9", "### Q7.8", "### Q2.5", "### summary"):
        assert title in out
    assert "rounding floor, overflow wrap" in out
    code, out, _ = _run(capsys, path, "--match", "kernel$|kernel:0")
    assert code == 0 and "**total** 2 tensors" in out and "bias" not in out
    code, _, err = _run(capsys, path, "--match", "nothing_like_this")
    assert code == 1 and "no tensor name matches 'nothing_like_this'" in err
    code, _, err = _run(capsys, path, "--match", "(")
    assert code == 1 and "not a regular expression" in err


def test_full_model_and_keras3_layouts(tmp_path):
    w = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    full = tmp_path / "full.h5"
    with h5py.File(full, "w") as f:
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = np.array([b"d"])
        g = mw.create_group("d")
        g.attrs["weight_names"] = np.array([b"d/kernel:0"])
        g.create_dataset("d/kernel:0", data=w)
        f.create_group("optimizer_weights").create_dataset("m", data=np.ones(3))  # not weights
    assert [(n, a.shape) for n, a in read_tensors(full)] == [("d/kernel:0", (2, 3))]
    k3 = tmp_path / "m.weights.h5"
    with h5py.File(k3, "w") as f:
        f.create_dataset("layers/dense/vars/0", data=w)
        f.create_dataset("layers/dense/vars/1", data=np.zeros(3, dtype=np.float32))
    assert [n for n, _ in read_tensors(k3)] == ["layers/dense/vars/0", "layers/dense/vars/1"]


def test_keras_archive(tmp_path):
    import zipfile

    inner = tmp_path / "model.weights.h5"
    with h5py.File(inner, "w") as f:
        f.create_dataset("layers/conv2d/vars/0", data=np.full((1, 1, 2, 2), 0.5, dtype=np.float32))
    archive = tmp_path / "m.keras"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("config.json", "{}")
        zf.write(inner, "model.weights.h5")
    assert [(n, a.shape) for n, a in read_tensors(archive)] == [("layers/conv2d/vars/0", (1, 1, 2, 2))]
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(ModelError, match="without model.weights.h5"):
        read_tensors(bad)


def test_npy_and_npz(tmp_path, capsys):
    np.save(tmp_path / "t.npy", np.array([0.1, -0.2, 0.3]))
    np.savez(tmp_path / "t.npz", a=np.ones(2), b=np.array(["x"]))
    code, out, _ = _run(capsys, tmp_path / "t.npy", "--format", "Q0.15")
    assert code == 0 and "| t | 3 |" in out
    skipped: list = []
    assert [n for n, _ in read_tensors(tmp_path / "t.npz", skipped)] == ["a"]
    assert skipped == [{"name": "b", "dtype": "<U1"}]


def test_errors_name_the_file_and_value(tmp_path, capsys):
    code, _, err = _run(capsys, tmp_path / "missing.h5")
    assert code == 1 and "missing.h5: no such file" in err
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file at all")
    code, _, err = _run(capsys, bad)
    assert code == 1 and "bad.h5: cannot read" in err
    nan = tmp_path / "nan.npy"
    x = np.zeros(5)
    x[3] = np.nan
    np.save(nan, x)
    code, _, err = _run(capsys, nan, "--format", "Q2.5")
    assert code == 1 and "nan.npy" in err and "1 NaN value(s) of 5; first at index (3,)" in err
    code, _, err = _run(capsys, nan, "--format", "Q2..5")
    assert code == 1 and "'Q2..5'" in err
    empty = tmp_path / "empty.h5"
    h5py.File(empty, "w").close()
    code, _, err = _run(capsys, empty)
    assert code == 1 and "no float tensors" in err


def test_default_source_is_the_mobilenet_weights(data_dir, tmp_path, capsys):
    out_json = tmp_path / "mnv2.json"
    code, out, err = _run(capsys, "--formats", "Q9,Q6", "--json", out_json)
    assert code == 0, err
    assert "mobilenet_v2_1.0_224_no_top_tfslim.h5" in out
    doc = json.loads(out_json.read_text())
    q9, q6 = doc["formats"]
    assert q9["totals"]["tensors"] == 260 and q9["totals"]["size"] == 2_257_984  # PROVENANCE.md
    assert q9["tensors"][0]["name"] == "Conv1/kernel" and q9["tensors"][0]["shape"] == [3, 3, 3, 32]
    # raw (unfolded) BN moving variances reach 2**12 or so: Q6.9 saturates them, Q9.6 holds everything
    assert q9["totals"]["overflow"]["events"] > 0 and q6["totals"]["overflow"]["events"] == 0
    assert q6["totals"]["max_abs_error"] <= 2**-7
