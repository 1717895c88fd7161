"""`qsim vectors MODEL.kmodel`: per KPU layer the stages follow the manifest's rules (the slow
Python-int reference `qsim.k210.ref.kpu_ref`), the tables re-encode to the stored words, a set
regenerates byte for byte and re-reads as a fresh run; on a synthetic kmodel and on slim-320."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_synthetic_kmodel import build_kmodel

from qsim.cli import main
from qsim.k210 import KmodelExecutor, read_kmodel
from qsim.k210.fields import ActTable, decode_act, decode_bn
from qsim.k210.kpu import POOL_TYPES
from qsim.k210.quantize import make_kpu_layer, quant_param
from qsim.k210.ref import kpu_ref
from qsim.vectors import read_vectors
from qsim.vectors.k210 import write_vectors


def check_stage_rules(layer: dict, d: dict[str, np.ndarray]) -> None:
    """acc, bn, act and output of one layer from its input and tables, in Python ints."""
    table = ActTable(d["act_x_start"], d["act_y_mul"], d["act_shift"], d["act_bias"])
    for b in range(layer["batches"]):
        x = d["input"][b].tolist()
        a = kpu_ref.conv_ref(x, d["weights"].tolist(), layer["depthwise"], layer["pad_value"], layer["arg_x"],
                             layer["shr_x"], layer["arg_w"], layer["shr_w"], layer["arg_add"])
        assert a == d["acc"][b].tolist(), layer["name"]
        bn = kpu_ref.bn_ref(a, d["bn_mul"].tolist(), d["bn_shift"].tolist(), d["bn_add"].tolist())
        assert bn == d["bn"][b].tolist(), layer["name"]
        z = kpu_ref.act_ref(bn, table)
        assert z == d["act"][b].tolist(), layer["name"]
        assert kpu_ref.pool_ref(z, layer["pool_type"]) == d["output"][b].tolist(), layer["name"]
    bn_tab = decode_bn(d["bn_entries"].astype(np.uint64))
    assert [bn_tab.mul.tolist(), bn_tab.shift.tolist(), bn_tab.add.tolist()] == \
        [d["bn_mul"].tolist(), d["bn_shift"].tolist(), d["bn_add"].tolist()]
    act = decode_act(d["act_words"].astype(np.uint64))
    assert act.x_start.tolist() == d["act_x_start"].tolist() and act.bias.tolist() == d["act_bias"].tolist()


def synthetic(tmp_path, depthwise: bool, pool: int, batches: int = 2, seed: int = 0, c: int = 3, h: int = 6,
              w: int = 9, k: int = 3):
    rng = np.random.default_rng(seed)
    oc = c if depthwise else int(rng.integers(1, 6))
    layer = make_kpu_layer("l", rng.normal(0, 1, (oc, 1 if depthwise else c, k, k)), rng.normal(0, 0.5, oc),
                           depthwise, quant_param(-1, 1), quant_param(-2, 4), ("relu", None, 0.1), (h, w), pool)
    path = tmp_path / f"syn_{int(depthwise)}_{pool}.kmodel"
    path.write_bytes(build_kmodel(layer, batches))
    x = rng.integers(0, 256, (batches, c, h, w)).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    return path, x


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10**6), c=st.integers(1, 4), h=st.integers(2, 9), w=st.integers(2, 40),
       k=st.sampled_from([1, 3]), depthwise=st.booleans(), pool=st.sampled_from(sorted(POOL_TYPES)),
       batches=st.integers(1, 2))
def test_synthetic_layer_stages_follow_the_stated_rules(seed, c, h, w, k, depthwise, pool, batches):
    stride = POOL_TYPES[pool][2]
    h, w = max(h, stride), max(w, stride)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        path, x = synthetic(tmp_path, depthwise, pool, batches, seed, c, h, w, k)
        manifest = write_vectors(path, x, tmp_path / "v")
        _, data = read_vectors(tmp_path / "v")
        assert manifest["backend"] == "k210" and manifest["layout"]["maps"].startswith("NCHW")
        (layer,) = manifest["layers"]
        d = data[layer["name"]]
        assert layer["name"] == "node0 kpu_conv2d" and layer["batches"] == batches
        assert layer["depthwise"] is depthwise and layer["kernel_size"] == k and layer["pool_type"] == pool
        np.testing.assert_array_equal(d["input"], x)
        check_stage_rules(layer, d)
        expected = KmodelExecutor(read_kmodel(path)).run(x, keep=True).records[0].data
        np.testing.assert_array_equal(d["output"], expected)
        assert set(layer["overflow"]) == {"acc", "bn", "act"}
        assert layer["overflow"]["act"]["elements"] == d["act"].size


def test_cli_reads_input_and_images(tmp_path):
    from PIL import Image

    path, x = synthetic(tmp_path, False, 1)
    assert main(["vectors", str(path), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "v")]) == 0
    np.testing.assert_array_equal(read_vectors(tmp_path / "v")[1]["node0 kpu_conv2d"]["input"], x)
    path, _ = synthetic(tmp_path, False, 0, batches=1)
    (tmp_path / "img").mkdir()
    rgb = np.random.default_rng(2).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "img" / "a.png")
    assert main(["vectors", str(path), "--images", str(tmp_path / "img"), "--out", str(tmp_path / "w")]) == 0
    got = read_vectors(tmp_path / "w")[1]["node0 kpu_conv2d"]["input"]
    np.testing.assert_array_equal(got, rgb.transpose(2, 0, 1)[None])  # same size: planes unchanged


@pytest.mark.parametrize("fmt_out", ["npz", "bin", "c"])
def test_synthetic_vectors_regenerate_identically(tmp_path, fmt_out):
    path, x = synthetic(tmp_path, False, 1, batches=1)
    m1 = write_vectors(path, x, tmp_path / "a", format_out=fmt_out)
    m2 = write_vectors(path, x, tmp_path / "b", format_out=fmt_out)
    assert m1["content_hash"] == m2["content_hash"]
    for f in m1["files"]:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    _, d1 = read_vectors(tmp_path / "a")
    stages = {}
    KmodelExecutor(read_kmodel(path)).run(x, stages=stages)
    for key, field in (("input", "input"), ("A", "acc"), ("B", "bn"), ("Z", "act"), ("output", "output")):
        np.testing.assert_array_equal(d1["node0 kpu_conv2d"][field], stages[0][key])
    if fmt_out == "c":
        text = (tmp_path / "a" / "node0_kpu_conv2d_vectors.h").read_text()
        assert "static const uint8_t node0_kpu_conv2d_weights[" in text and "#define NODE0_KPU_CONV2D_ARG_ADD" in text


def test_bad_layers_are_one_line_errors(tmp_path, capsys):
    path, _ = synthetic(tmp_path, False, 0, batches=1)
    assert main(["vectors", str(path), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "v"),
                 "--layers", "node9"]) == 1
    assert "no kpu_conv2d node" in capsys.readouterr().err
    assert main(["vectors", str(path), "--format", "Q6.9", "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "v")]) == 1
    assert "carries its own quantization" in capsys.readouterr().err


SLIM_LAYERS = "^node(0|1|2|3) "  # the first layers: 3x3 conv (stride 2 = pool), depthwise, 1x1


def test_slim320_vectors(data_dir, tmp_path):
    golden = np.load(data_dir / "kmodels" / "slim-320-golden.npz")
    np.save(tmp_path / "x.npy", golden["inputs"][:1])
    kmodel = data_dir / "kmodels" / "slim-320.kmodel"
    argv = ["vectors", str(kmodel), "--input", str(tmp_path / "x.npy"), "--layers", SLIM_LAYERS]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert main([*argv, "--out", str(tmp_path / "b"), "--format-out", "bin"]) == 0
    assert main([*argv, "--out", str(tmp_path / "c")]) == 0
    m, d = read_vectors(tmp_path / "a")
    mb, db = read_vectors(tmp_path / "b")
    assert m["content_hash"] == read_vectors(tmp_path / "c")[0]["content_hash"]
    assert [layer["node"] for layer in m["layers"]] == [layer["node"] for layer in mb["layers"]]
    assert len(m["layers"]) >= 3 and m["model_sha256"] and m["switches"]["act_rounding"] == "nncase"
    first = m["layers"][0]
    model = read_kmodel(kmodel)
    assert model.inputs[0].memory_type == 2  # the model input is the first KPU layer's input map
    np.testing.assert_array_equal(d[first["name"]]["input"], golden["inputs"][:1])
    stages = {}
    KmodelExecutor(model).run(golden["inputs"][:1], stages=stages)
    kinds = set()
    for layer in m["layers"]:
        v, vb = d[layer["name"]], db[layer["name"]]
        for field in v:
            np.testing.assert_array_equal(v[field], vb[field])
        np.testing.assert_array_equal(v["output"], stages[layer["node"]]["output"])
        # stage B and the activation in exact integer NumPy (slim-320's maps are too big for Python ints)
        mul, sh, add = (v[k].astype(np.int64)[None, :, None, None] for k in ("bn_mul", "bn_shift", "bn_add"))
        np.testing.assert_array_equal((v["acc"] * mul >> sh) + add, v["bn"])
        table = ActTable(v["act_x_start"], v["act_y_mul"], v["act_shift"], v["act_bias"])
        rows = v["bn"][0, :, :2].tolist()  # two rows of every channel through the Python-int reference
        assert kpu_ref.act_ref(rows, table) == v["act"][0, :, :2].tolist()
        assert kpu_ref.pool_ref(v["act"][0].tolist(), layer["pool_type"]) == v["output"][0].tolist()
        kinds.add((layer["kernel_size"], layer["depthwise"], layer["pool"]))
    assert len(kinds) >= 2


def test_documented_kmodel_command(data_dir, tmp_path, monkeypatch):
    """docs/device.md's kmodel block, on slim-320 and its golden input."""
    from tests.testing.test_c_kernel import doc_block
    from tests.testing.test_device_doc import run_commands

    monkeypatch.chdir(tmp_path)
    (tmp_path / "slim-320.kmodel").symlink_to(data_dir / "kmodels" / "slim-320.kmodel")
    np.save(tmp_path / "x_kpu.npy", np.load(data_dir / "kmodels" / "slim-320-golden.npz")["inputs"][:1])
    run_commands(doc_block("kmodel_vectors.sh"))
    manifest, _ = read_vectors(tmp_path / "kpu_vectors")
    assert [layer["name"] for layer in manifest["layers"]] == ["node0 kpu_conv2d", "node1 kpu_conv2d",
                                                               "node2 kpu_conv2d"]
    assert (tmp_path / "kpu_c" / "model.h").is_file() and (tmp_path / "kpu_c" / "node0_kpu_conv2d.h").is_file()


A98 = Path(__file__).resolve().parents[2] / "qsim" / "assets" / "a98_alpha1.0.h5"


def test_keras_k210_vectors_follow_the_rules_and_the_backend(tmp_path):
    """``--format k210``: qsim's own KPU quantization of the A98; conv (+ CPU subsample), depthwise,
    1x1 and a residual add run on the KPU."""
    from qsim.executors import run
    from qsim.model import load_model

    x = np.random.default_rng(16).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    names = ["Conv1_relu", "expanded_conv_depthwise_relu", "block_1_project_BN", "block_2_add"]
    argv = ["vectors", str(A98), "--format", "k210", "--calibration", str(tmp_path / "x.npy"), "--input",
            str(tmp_path / "x.npy"), "--layers", f"^({'|'.join(names)})$"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    manifest, data = read_vectors(tmp_path / "a")
    assert manifest["content_hash"] == read_vectors(tmp_path / "b")[0]["content_hash"]
    assert [layer["name"] for layer in manifest["layers"]] == names
    assert [layer["step"] for layer in manifest["layers"]] == ["kpu", "kpu", "kpu", "add_kpu"]
    trace = run(load_model(A98), x, executor="k210", calibration=x)
    for layer in manifest["layers"]:
        d = data[layer["name"]]
        check_stage_rules(layer, d)
        y = d["output"]
        if layer["subsample"]:
            s, oy, ox = layer["subsample"]
            y = y[:, :, oy::s, ox::s]
        want = trace.codes[layer["name"]].transpose(0, 3, 1, 2)
        np.testing.assert_array_equal(y[:, :, :want.shape[2], :want.shape[3]], want)
        if layer["step"] == "kpu":
            np.testing.assert_array_equal(d["input"], trace.codes[layer["inputs"][0]].transpose(0, 3, 1, 2))
    assert manifest["layers"][0]["subsample"] == [2, 1, 1]
