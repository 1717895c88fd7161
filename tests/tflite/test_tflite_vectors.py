"""`qsim vectors MODEL.tflite`: per CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED the tensors equal
TFLite's BUILTIN_REF interpreter, the accumulators requantized by the manifest's rule (slow
Python-int twins, `qsim.tflite.ref`) give the output codes, and a vector set regenerates byte
for byte and re-reads as a fresh run."""
from __future__ import annotations

import re

import numpy as np
import pytest
from test_tflite_vs_builtin_ref import builtin_ref, inputs_for

from qsim.cli import main
from qsim.tflite import TfliteOptions, prepare, read_tflite, read_tflite_bytes
from qsim.tflite import ref as tref
from qsim.vectors import read_vectors
from qsim.vectors.tflite import write_vectors

# conv + depthwise (multiplier 1 and 2) + int8 FC (float requant); ties; uint8 per-tensor; float I/O FC
MODELS = ["mobilenet", "mobilenet_pow2", "legacy_u8", "fcdeep"]


def cli_vectors(tflite_model_path, name, out, fmt_out="npz", seed=0, extra=()):
    path = tflite_model_path(name)
    x = inputs_for(read_tflite(path), seed)[0]
    np.save(out.parent / f"{out.name}_x.npy", x)
    argv = ["vectors", str(path), "--input", str(out.parent / f"{out.name}_x.npy"), "--out", str(out),
            "--format-out", fmt_out, *extra]
    assert main(argv) == 0
    manifest, data = read_vectors(out)
    return path, x, manifest, data


@pytest.mark.parametrize("name", MODELS)
def test_vectors_equal_builtin_ref_tensors(tf, tflite_model_path, tflite_model_bytes, tmp_path, name):
    path, x, manifest, data = cli_vectors(tflite_model_path, name, tmp_path / "v")
    it = builtin_ref(tf, tflite_model_bytes(name), x)
    model = read_tflite(path)
    macs = [op for op in model.operators if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert [layer["op"] for layer in manifest["layers"]] == [op.index for op in macs]
    assert manifest["backend"] == "tflite" and manifest["layout"]["activations"] == "NHWC"
    for layer in manifest["layers"]:
        d, t = data[layer["name"]], layer["tensors"]
        for field, role in (("input", "input"), ("weights", "filter"), ("bias", "bias"), ("output", "output")):
            if t[role] is None:
                assert field not in d
                continue
            want = it.get_tensor(t[role]["index"])
            np.testing.assert_array_equal(d[field], want.astype(np.int64), err_msg=f"{layer['name']} {field}")
            assert layer["fields"][field]["shape"] == list(want.shape)


@pytest.mark.parametrize("name", MODELS)
def test_accumulators_requantized_by_the_stated_rule_give_the_outputs(tflite_model_path, tmp_path, name):
    _, _, manifest, data = cli_vectors(tflite_model_path, name, tmp_path / "v", seed=1)
    kinds = set()
    for layer in manifest["layers"]:
        d = data[layer["name"]]
        kinds.add(layer["requant"])
        oc = d["acc"].shape[-1]
        if layer["requant"] == "float":
            t = layer["tensors"]
            in_s, out_s = t["input"]["scale"][0], t["output"]["scale"][0]
            w_s = np.broadcast_to(t["filter"]["scale"], (oc,))
            assert layer["effective_scale"] == [in_s * float(s) / out_s for s in w_s]
        else:
            q = np.broadcast_to(d["output_multiplier"], (oc,))
            sh = np.broadcast_to(d["output_shift"], (oc,))
        got = []
        for idx, acc in np.ndenumerate(d["acc"]):
            c = idx[-1]
            a = tref.wrap(int(acc), layer["acc_bits"])
            if layer["requant"] == "float":
                v = tref.fc_float_requant(a, in_s, float(w_s[c]), out_s)
            else:
                v = tref.mbqm(a, int(q[c]), int(sh[c]), layer["requant"] == "single")
            got.append(tref.clamp(v + layer["output_zero_point"], layer["act_min"], layer["act_max"]))
        np.testing.assert_array_equal(np.array(got).reshape(d["output"].shape), d["output"], err_msg=layer["name"])
        assert layer["requant_rule"].startswith("TFLite")
    # int8 FULLY_CONNECTED requantizes in double (no multiplier); uint8 FC and every conv: MBQM
    assert kinds == {"mobilenet": {"double", "float"}, "mobilenet_pow2": {"double", "float"},
                     "legacy_u8": {"double"}, "fcdeep": {"float"}}[name]


@pytest.mark.parametrize("fmt_out", ["npz", "bin", "c"])
def test_vectors_regenerate_identically_and_reread_as_a_fresh_run(tflite_model_path, tmp_path, fmt_out):
    path, x, m1, d1 = cli_vectors(tflite_model_path, "mobilenet", tmp_path / "a", fmt_out)
    _, _, m2, _ = cli_vectors(tflite_model_path, "mobilenet", tmp_path / "b", fmt_out)
    assert m1["content_hash"] == m2["content_hash"] and m1["files"] == m2["files"]
    for f in m1["files"]:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    prog = prepare(read_tflite(path))
    run = prog.run(x)
    kernels = {k.op.index: k for k in prog.kernels}
    for layer in m1["layers"]:
        d, k = d1[layer["name"]], kernels[layer["op"]]
        np.testing.assert_array_equal(d["input"], run.tensors[k.op.inputs[0]])
        np.testing.assert_array_equal(d["output"], run.tensors[k.op.outputs[0]])
        if layer["requant"] == "float":  # int8 FULLY_CONNECTED: the doubles the kernel holds
            assert "output_multiplier" not in d and layer["effective_scale"] == k.eff.tolist()
        else:
            np.testing.assert_array_equal(d["output_multiplier"], k.q)
            np.testing.assert_array_equal(d["output_shift"], k.shift)
    if fmt_out == "c":
        text = (tmp_path / "a" / "op0_conv_2d_vectors.h").read_text()
        assert "static const int8_t op0_conv_2d_weights[" in text and "#define OP0_CONV_2D_OUTPUT_ZP" in text
        (fc,) = [layer for layer in m1["layers"] if layer["requant"] == "float"]
        stem = f"op{fc['op']}_fully_connected"
        body = re.search(rf"static const double {stem}_effective_scale\[\d+\] = \{{(.*?)\}};",
                         (tmp_path / "a" / f"{stem}_vectors.h").read_text(), re.S).group(1)
        assert [float(v) for v in body.split(",")] == fc["effective_scale"]


def test_narrow_accumulator_events_are_in_the_manifest(tflite_model_bytes, tmp_path):
    model = read_tflite_bytes(tflite_model_bytes("mobilenet"))
    x = inputs_for(model, 0)[0]
    manifest = write_vectors(model, x, tmp_path, options=TfliteOptions(acc_bits=12), layers="CONV_2D")
    _, data = read_vectors(tmp_path)
    events = 0
    for layer in manifest["layers"]:
        acc = data[layer["name"]]["acc"]
        wrapped = np.array([tref.wrap(int(v), 12) for v in acc.ravel()])
        assert layer["overflow"]["acc"]["events"] == int(np.count_nonzero(wrapped != acc.ravel()))
        events += layer["overflow"]["acc"]["events"]
        assert layer["type"] in ("CONV_2D", "DEPTHWISE_CONV_2D") and layer["acc_bits"] == 12
    assert events > 0


def test_bad_arguments_are_one_line_errors(tflite_model_path, tmp_path, capsys):
    path = tflite_model_path("mobilenet")
    np.save(tmp_path / "x.npy", inputs_for(read_tflite(path), 0)[0])
    base = ["vectors", str(path), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o")]
    assert main([*base, "--layers", "^nothing$"]) == 1
    assert "no CONV_2D/DEPTHWISE_CONV_2D/FULLY_CONNECTED operator" in capsys.readouterr().err
    assert main([*base, "--format", "Q6.9"]) == 1
    assert "carries its own quantization" in capsys.readouterr().err


def test_documented_tflite_commands(tflite_model_path, tmp_path, monkeypatch):
    """docs/device.md's TFLite block, on a model converted here."""
    from tests.testing.test_c_kernel import doc_block
    from tests.testing.test_device_doc import run_commands

    path = tflite_model_path("mobilenet")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.tflite").write_bytes(path.read_bytes())
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(-1, 1, (1, 24, 24, 3)).astype(np.float32))
    run_commands(doc_block("tflite_vectors.sh"))
    manifest, _ = read_vectors(tmp_path / "tflite_vectors")
    assert {layer["type"] for layer in manifest["layers"]} == {"CONV_2D", "FULLY_CONNECTED"}
    assert (tmp_path / "tflite_vectors" / "op0_conv_2d_vectors.h").is_file()
    assert (tmp_path / "tflite_c" / "model.h").is_file()


def test_images_are_resized_preprocessed_and_quantized(tflite_model_path, tmp_path):
    from PIL import Image

    from qsim.images import resize_bilinear
    from qsim.tflite import quantize_input

    path = tflite_model_path("mobilenet")
    (tmp_path / "img").mkdir()
    rgb = np.random.default_rng(3).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "img" / "a.png")
    assert main(["vectors", str(path), "--images", str(tmp_path / "img"), "--out", str(tmp_path / "v"),
                 "--layers", "^op0 "]) == 0
    t_in = read_tflite(path).tensors[read_tflite(path).inputs[0]]
    want = quantize_input(t_in, (resize_bilinear(rgb, (24, 24)).astype(np.float32) / 127.5 - 1.0)[None])
    manifest, data = read_vectors(tmp_path / "v")
    np.testing.assert_array_equal(data[manifest["layers"][0]["name"]]["input"], want)
