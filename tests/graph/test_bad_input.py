"""Bad model files and bad images give clear QsimErrors naming the file, layer and value."""
from __future__ import annotations

import json
import zipfile

import h5py
import numpy as np
import pytest

import qsim
from qsim.errors import InputError, ModelError
from qsim.executors import float_exec

from .keras2_files import keras2_config, keras2_weights, write_legacy_h5


@pytest.fixture()
def k2_file(tmp_path):
    path = tmp_path / "k2.h5"
    write_legacy_h5(path)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        qsim.load_model(tmp_path / "nope.h5")


def test_not_hdf5(tmp_path):
    path = tmp_path / "model.h5"
    path.write_text("this is not a model")
    with pytest.raises(ModelError, match=r"model\.h5: neither HDF5"):
        qsim.load_model(path)


def test_truncated_hdf5(k2_file, tmp_path):
    data = k2_file.read_bytes()
    for cut in (len(data) // 2, len(data) - 100, 4096):
        path = tmp_path / f"cut{cut}.h5"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelError, match=f"cut{cut}.h5"):
            qsim.load_model(path)


def test_truncated_and_corrupt_keras_zip(tmp_path):
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps(keras2_config()))
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(ModelError, match=r"m\.keras.*HDF5"):
        qsim.load_model(path)
    cut = tmp_path / "cut.keras"
    cut.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ModelError, match=r"cut\.keras"):
        qsim.load_model(cut)
    empty = tmp_path / "empty.keras"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(ModelError, match="without model.weights.h5"):
        qsim.load_model(empty)


def test_unsupported_layer_names_layer_type_and_supported_list(tmp_path):
    config = keras2_config()
    config["config"]["layers"][2] = {"class_name": "MaxPooling3D", "name": "drop",
                                     "config": {"name": "drop", "pool_size": [2, 2, 2]},
                                     "inbound_nodes": [[["backbone", 1, 0, {}]]]}
    path = tmp_path / "pool.h5"
    write_legacy_h5(path, config)
    with pytest.raises(ModelError) as info:
        qsim.load_model(path)
    msg = str(info.value)
    assert "pool.h5" in msg and "'drop'" in msg and "MaxPooling3D" in msg and "DepthwiseConv2D" in msg
    assert "MaxPooling2D" in msg and "Dense" in msg  # the supported list


@pytest.mark.parametrize("change, match", [
    ({"activation": "gelu"}, "activation 'gelu' not supported"),
    ({"padding": "causal"}, "padding='causal'"),
    ({"data_format": "channels_first"}, "channels_last"),
    ({"groups": 2}, "groups=2"),
])
def test_unsupported_layer_options(tmp_path, change, match):
    config = keras2_config()
    config["config"]["layers"][7]["config"].update(change)  # "head" Conv2D
    path = tmp_path / "opt.h5"
    write_legacy_h5(path, config)
    with pytest.raises(ModelError, match=match):
        qsim.load_model(path)


def test_unsupported_interpolation_and_shared_layer(tmp_path):
    config = keras2_config()
    config["config"]["layers"][3]["config"]["interpolation"] = "bicubic"
    write_legacy_h5(tmp_path / "a.h5", config)
    with pytest.raises(ModelError, match="'up'.*bicubic"):
        qsim.load_model(tmp_path / "a.h5")
    config = keras2_config()
    config["config"]["layers"][4]["inbound_nodes"].append([["image", 0, 0, {}]])
    write_legacy_h5(tmp_path / "b.h5", config)
    with pytest.raises(ModelError, match="'side'.*called 2 times"):
        qsim.load_model(tmp_path / "b.h5")


def test_missing_weights(tmp_path):
    weights = keras2_weights()
    del weights["head"]["head/bias:0"]
    path = tmp_path / "miss.h5"
    write_legacy_h5(path, weights=weights)
    with pytest.raises(ModelError, match=r"miss\.h5.*'head'.*'bias' missing"):
        qsim.load_model(path)
    path2 = tmp_path / "listed.h5"
    write_legacy_h5(path2)
    with h5py.File(path2, "a") as f:
        del f["model_weights/side/side/kernel:0"]  # listed in weight_names, dataset gone
    with pytest.raises(ModelError, match="listed but missing"):
        qsim.load_model(path2)


@pytest.mark.parametrize("fold_bn", [True, False])
def test_nan_and_inf_weights(tmp_path, fold_bn):
    weights = keras2_weights()
    kernel = weights["backbone"]["dw/depthwise_kernel:0"]
    kernel[0, 0, 0, 0] = np.nan
    kernel[1, 1, 1, 1] = np.nan
    kernel[2, 2, 2, 1] = np.inf
    path = tmp_path / "nan.h5"
    write_legacy_h5(path, weights=weights)
    with pytest.raises(ModelError, match=r"nan\.h5: layer 'dw'.*kernel.*3 non-finite.*2 NaN, 1 Inf"):
        qsim.load_model(path, fold_bn=fold_bn)


def test_inconsistent_weights_shape(tmp_path):
    weights = keras2_weights()
    weights["head"]["head/kernel:0"] = np.zeros((3, 3, 7, 5), np.float32)  # cat has 16 channels
    path = tmp_path / "shape.h5"
    write_legacy_h5(path, weights=weights)
    with pytest.raises(ModelError, match="'head'.*7 input channels.*16"):
        qsim.load_model(path)


def test_bad_arch(tmp_path, k2_file):
    with pytest.raises(ModelError, match="not valid JSON"):
        qsim.load_model(k2_file, arch="{not json")
    with pytest.raises(ModelError, match="expected a Functional or Sequential"):
        qsim.load_model(k2_file, arch={"class_name": "Conv2D", "config": {}})


@pytest.fixture()
def k2_graph(k2_file):
    return qsim.load_model(k2_file)


@pytest.mark.parametrize("shape, match", [
    ((16, 16), r"got shape \(16, 16\), expected \(N, H, W, 3\)"),
    ((1, 1, 16, 16, 3), "expected"),
    ((1, 16, 16, 4), "got 4 channels"),
    ((16, 16, 1), "got 1 channels"),
    ((1, 0, 16, 3), "empty"),
])
def test_wrong_image_shape(k2_graph, shape, match):
    with pytest.raises(InputError, match=match):
        float_exec.run(k2_graph, np.zeros(shape, np.float32))


def test_wrong_image_dtype_and_values(k2_graph):
    with pytest.raises(InputError, match="dtype uint8.*preprocessed"):
        float_exec.run(k2_graph, np.zeros((16, 16, 3), np.uint8))
    x = np.zeros((16, 16, 3), np.float32)
    x[3, 4, 1] = np.nan
    with pytest.raises(InputError, match="1 non-finite"):
        float_exec.run(k2_graph, x)
    with pytest.raises(InputError, match="float32 or float64"):
        float_exec.run(k2_graph, x, dtype=np.float16)
    with pytest.raises(InputError, match="missing"):
        float_exec.run(k2_graph, {"other": x})


def test_unknown_executor(k2_graph):
    with pytest.raises(qsim.QsimError, match="unknown executor 'nope'.*float"):
        qsim.run(k2_graph, np.zeros((16, 16, 3), np.float32), executor="nope")


def test_image_too_small_names_the_node(k2_graph):
    with pytest.raises(InputError, match="node 'dw'.*smaller than the 3x3 kernel"):
        float_exec.run(k2_graph, np.zeros((2, 2, 3), np.float32))


def test_weighted_name_clash_between_nested_and_outer_model(tmp_path):
    config = keras2_config()
    head = config["config"]["layers"][7]
    head["name"] = head["config"]["name"] = "conv"  # same name as the backbone's conv
    config["config"]["layers"][8]["inbound_nodes"] = [[["conv", 0, 0, {}]]]
    weights = keras2_weights()
    weights["conv"] = {"conv/kernel:0": weights["head"].pop("head/kernel:0"),
                       "conv/bias:0": weights["head"].pop("head/bias:0")}
    del weights["head"]
    path = tmp_path / "clash.h5"
    write_legacy_h5(path, config, weights)
    with pytest.raises(ModelError, match=r"\['conv'\].*ambiguous"):
        qsim.load_model(path)
