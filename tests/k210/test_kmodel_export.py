"""`qsim export MODEL.kmodel`: the C arrays are the kmodel's stored bytes (register words, BN and
activation tables, weights), and a KPU layer rebuilt from the re-read arrays alone computes what
the kmodel executor computes."""
from __future__ import annotations

import re

import numpy as np
from test_synthetic_kmodel import build_kmodel

from qsim.cli import main
from qsim.k210 import KmodelExecutor, KpuLayer, read_kmodel
from qsim.k210.fields import decode_act, decode_bn, decode_layer
from qsim.k210.quantize import make_kpu_layer, quant_param
from tests.testing.test_export import parse_header

U64 = re.compile(r"static const uint64_t (\w+)\[(\d+)\] = \{(.*?)\};", re.S)


def read_header(text: str) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    arrays = {}
    for name, n, body in U64.findall(text):
        arrays[name] = [int(v.strip().removesuffix("ULL"), 16) for v in body.split(",") if v.strip()]
        assert len(arrays[name]) == int(n)
    u8, defines = parse_header(U64.sub("", text))
    arrays.update({k: v for k, (_, v) in u8.items()})
    return arrays, defines


def exported_layers(kmodel_path, out):
    assert main(["export", str(kmodel_path), "--out", str(out)]) == 0
    model = read_kmodel(kmodel_path)
    raw = kmodel_path.read_bytes()
    kpu = [n for n in model.nodes if n.name == "kpu_conv2d"]
    assert f"#define QSIM_N_KPU_LAYERS {len(kpu)}" in (out / "model.h").read_text()
    layers = {}
    for n in kpu:
        stem = f"node{n.index}_kpu_conv2d"
        arrays, defines = read_header((out / f"{stem}.h").read_text())
        words = arrays[f"{stem}_layer_args"]
        # as stored: the 12 words follow the body's output range (16 bytes) and batches (8 bytes)
        start = n.body_offset + 24
        assert words == np.frombuffer(raw[start:start + 96], "<u8").tolist()
        args = decode_layer(words)
        assert args == n.body.args and defines[f"{stem.upper()}_BATCHES"] == n.body.batches
        layer = KpuLayer.from_registers(args, decode_bn(np.array(arrays[f"{stem}_bn"], np.uint64)),
                                        decode_act(arrays[f"{stem}_act"]), arrays[f"{stem}_weights"].astype(np.uint8))
        layers[n.index] = layer
    return model, layers


def test_synthetic_export_rebuilds_the_layer(tmp_path):
    rng = np.random.default_rng(5)
    layer = make_kpu_layer("l", rng.normal(0, 1, (5, 3, 3, 3)), rng.normal(0, 0.5, 5), False, quant_param(-1, 1),
                           quant_param(-2, 4), ("relu", 6.0, 0.0), (8, 10), 5)
    path = tmp_path / "syn.kmodel"
    path.write_bytes(build_kmodel(layer, 1))
    model, layers = exported_layers(path, tmp_path / "c")
    x = rng.integers(0, 256, (1, 3, 8, 10)).astype(np.uint8)
    want = KmodelExecutor(model).run(x, keep=True).records[0].data
    np.testing.assert_array_equal(layers[0].run(x[0])[None], want)


def test_slim320_export_is_the_stored_model(data_dir, tmp_path):
    golden = np.load(data_dir / "kmodels" / "slim-320-golden.npz")
    model, layers = exported_layers(data_dir / "kmodels" / "slim-320.kmodel", tmp_path / "c")
    stages = {}
    KmodelExecutor(model).run(golden["inputs"][:1], stages=stages)
    for i in (0, 1, 2):  # the first layers, rebuilt from the headers, on the run's own inputs
        np.testing.assert_array_equal(layers[i].run(stages[i]["input"][0])[None], stages[i]["output"])
    assert len(layers) == len(stages)


def test_export_refuses_plans_and_hls(tmp_path, capsys):
    rng = np.random.default_rng(0)
    layer = make_kpu_layer("l", rng.normal(0, 1, (2, 1, 1, 1)), None, False, quant_param(-1, 1), quant_param(0, 6),
                           ("relu", 6.0, 0.0), (4, 4), 0)
    path = tmp_path / "m.kmodel"
    path.write_bytes(build_kmodel(layer, 1))
    assert main(["export", str(path), "--out", str(tmp_path / "o"), "--target", "hls"]) == 1
    assert "--target c" in capsys.readouterr().err
    assert main(["export", str(path), "--out", str(tmp_path / "o"), "--plan", "p.json"]) == 1
    assert "carries its own quantization" in capsys.readouterr().err
