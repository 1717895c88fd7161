"""Importer: Keras 2-era legacy HDF5 (hand-written with h5py), weights-only + JSON arch,
Keras 3 layouts without ``name`` attributes, nested models; no TensorFlow needed."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

import qsim
from qsim.executors import float_exec
from qsim.graph.keras_config import flatten
from qsim.graph.keras_import import import_keras
from qsim.graph.keras_weights import keras3_keys, to_snake_case

from .keras2_files import expected_graph, keras2_config, keras2_weights, write_legacy_h5, write_legacy_weights


@pytest.fixture()
def k2_file(tmp_path):
    path = tmp_path / "k2.h5"
    write_legacy_h5(path)
    return path


def test_keras2_nested_model_is_flattened_with_names_and_weights(k2_file):
    graph = import_keras(k2_file)
    kept = [n for n in graph if n.name != "drop"]  # Dropout: identity, removed by the passes
    assert [n.name for n in kept] == [n.name for n in expected_graph()]
    assert [n.op for n in kept] == [n.op for n in expected_graph()]
    assert graph.outputs == ["prob"]
    w = keras2_weights()
    np.testing.assert_array_equal(graph["dw"].weights["kernel"], w["backbone"]["dw/depthwise_kernel:0"])
    np.testing.assert_array_equal(graph["bn"].weights["variance"], w["backbone"]["bn/moving_variance:0"])
    assert graph["pad"].attrs["pads"] == (0, 1, 0, 1)
    assert graph["up"].attrs == {"size": (2, 2), "interpolation": "bilinear"}
    assert graph["side"].op == "relu" and graph["side"].inputs == ["side_linear"]
    assert graph["add"].inputs == ["up", "side"] and graph["cat"].inputs == ["add", "up"]
    assert graph["drop"].op == "identity"


@pytest.mark.parametrize("fold_bn", [True, False])
@pytest.mark.parametrize("size", [(16, 16), (20, 12), (13, 21)])
def test_keras2_model_computes_the_hand_built_graph(k2_file, fold_bn, size):
    """Loaded + passes (BN folding, pad fusion, identity removal) == the network built by hand."""
    graph = qsim.load_model(k2_file, fold_bn=fold_bn)
    assert "drop" not in graph and "pad" not in graph
    assert ("bn" in graph and graph["bn"].op == "conv2d") == fold_bn
    x = np.random.default_rng(1).uniform(-1, 1, (2, *size, 3))
    if size[0] % 4 or size[1] % 4:
        # Keras' fixed (0, 1) pad makes the backbone floor odd sizes; the side branch uses
        # ceil: the Add then has mismatched shapes, exactly as in Keras.
        with pytest.raises(qsim.QsimError, match="add"):
            float_exec.run(graph, x, dtype=np.float64)
        return
    got = float_exec.run(graph, x, dtype=np.float64)
    want = float_exec.run(expected_graph(), x, dtype=np.float64)
    # Folded weights are stored as float32, so folding moves results by ~1e-7 relative.
    tol = 1e-5 if fold_bn else 1e-12
    for name in graph.outputs + ["dw", "relu", "side", "cat"]:
        np.testing.assert_allclose(got.values[name], want.values[name], rtol=tol, atol=tol)


def test_weights_only_file_with_arch(tmp_path):
    weights, arch = tmp_path / "w.h5", tmp_path / "arch.json"
    write_legacy_weights(weights)
    arch.write_text(json.dumps(keras2_config()))
    for given in (arch, str(arch), arch.read_text(), keras2_config()):
        graph = qsim.load_model(weights, arch=given)
        np.testing.assert_array_equal(graph["head"].weights["kernel"], keras2_weights()["head"]["head/kernel:0"])
    with pytest.raises(qsim.QsimError, match="weights-only.*arch"):
        qsim.load_model(weights)


def test_fixed_input_size_resolves_same_pads(tmp_path):
    path = tmp_path / "fixed.h5"
    write_legacy_h5(path, keras2_config(input_hw=(16, 24)))
    graph = qsim.load_model(path)
    assert graph["bn"].attrs["pads"] == (0, 1, 0, 1)  # TF: 3x3/s2 on even sizes pads bottom/right
    assert graph["head"].attrs["pads"] == (1, 1, 1, 1)
    assert graph["dw"].attrs["pads"] == (0, 1, 0, 1)  # ZeroPadding2D fused
    assert any("fuse_pad: pad" in n for n in graph.notes)
    with pytest.raises(qsim.QsimError, match="16x24"):
        float_exec.run(graph, np.zeros((1, 16, 16, 3), np.float32))


def test_unused_weights_are_noted_not_fatal(tmp_path):
    path = tmp_path / "extra.h5"
    write_legacy_h5(path)
    with h5py.File(path, "a") as f:  # e.g. full-backbone weights for a model cut earlier
        group = f["model_weights"].create_group("ghost")
        group.attrs["weight_names"] = np.array([b"ghost/kernel:0"])
        group["ghost/kernel:0"] = np.zeros((1, 1, 1, 1), np.float32)
    graph = qsim.load_model(path)
    assert any("ghost" in n for n in graph.notes)


def test_keras3_container_keys_follow_keras_naming():
    assert to_snake_case("DepthwiseConv2D") == "depthwise_conv2d"
    assert to_snake_case("ZeroPadding2D") == "zero_padding2d"
    assert to_snake_case("InputLayer") == "input_layer"
    specs = [{"name": "a", "class_name": "InputLayer"}, {"name": "b", "class_name": "Conv2D"},
             {"name": "c", "class_name": "Conv2D"},
             {"name": "m", "class_name": "Functional", "children": [{"name": "d", "class_name": "Conv2D"}]}]
    assert keras3_keys(specs) == {
        "layers/input_layer/vars": "a", "layers/conv2d/vars": "b", "layers/conv2d_1/vars": "c",
        "layers/functional/vars": "m", "layers/functional/layers/conv2d/vars": "d"}


def test_keras3_weights_without_name_attributes(tmp_path):
    """Older Keras 3 files have no ``name`` on ``vars`` groups: keys are recomputed."""
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "name": "x", "config": {"name": "x", "batch_shape": [None, 4, 4, 2]},
         "inbound_nodes": []},
        {"class_name": "Conv2D", "name": "c", "config": {"name": "c", "filters": 3, "kernel_size": [1, 1],
         "strides": [1, 1], "padding": "valid", "use_bias": True, "activation": "linear"},
         "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                      "config": {"keras_history": ["x", 0, 0]}}], "kwargs": {}}]},
        {"class_name": "BatchNormalization", "name": "n", "config": {"name": "n", "axis": -1, "epsilon": 0.01,
         "center": False, "scale": True},
         "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                      "config": {"keras_history": ["c", 0, 0]}}], "kwargs": {"mask": None}}]},
    ], "input_layers": ["x", 0, 0], "output_layers": ["n", 0, 0]}}
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(size=(1, 1, 2, 3)), rng.normal(size=3)
    gamma, mean, var = rng.uniform(1, 2, 3), rng.normal(size=3), rng.uniform(1, 2, 3)
    path = tmp_path / "w.weights.h5"
    with h5py.File(path, "w") as f:
        f.create_group("layers/input_layer/vars")
        f["layers/conv2d/vars/0"], f["layers/conv2d/vars/1"] = kernel, bias
        for i, arr in enumerate([gamma, mean, var]):  # center=False: no beta
            f[f"layers/batch_normalization/vars/{i}"] = arr
        f.create_group("vars")
    graph = qsim.load_model(path, arch=config, fold_bn=False)
    np.testing.assert_allclose(graph["c"].weights["kernel"], kernel.astype(np.float32))
    np.testing.assert_allclose(graph["n"].weights["variance"], var.astype(np.float32))
    np.testing.assert_array_equal(graph["n"].weights["beta"], np.zeros(3, np.float32))
    np.testing.assert_allclose(graph["n"].weights["gamma"], gamma.astype(np.float32))


def test_sequential_config_is_chained():
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Conv2D", "config": {"name": "c1", "batch_input_shape": [None, 8, 8, 1], "filters": 2,
                                            "kernel_size": [3, 3]}},
        {"class_name": "ReLU", "config": {"name": "r"}},
    ]}}
    flat = flatten(config, "seq")
    assert [(lay.name, lay.inputs) for lay in flat.layers] == [("c1_input", []), ("c1", ["c1_input"]), ("r", ["c1"])]
    assert flat.outputs == ["r"]
