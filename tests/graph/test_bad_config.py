"""Issue 17 #2-#4: malformed Keras configs and weights that disagree with them are ModelErrors."""
from __future__ import annotations

import copy
import json
import zipfile

import h5py
import numpy as np
import pytest

import qsim
from qsim.errors import ModelError

from .keras2_files import keras2_config, keras2_weights, write_legacy_h5


def _write_h5(path, config) -> None:
    """A legacy .h5 with good weight groups and `config` as its model_config attribute."""
    write_legacy_h5(path)
    with h5py.File(path, "a") as f:
        f.attrs["model_config"] = json.dumps(config).encode()


def _write_keras_zip(path, config) -> None:
    """A .keras archive: `config` as config.json, weights in the legacy layout (also accepted)."""
    h5 = path.with_suffix(".w.h5")
    write_legacy_h5(h5)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", h5.read_bytes())


def _layer(cfg, name):
    for spec in cfg["config"]["layers"]:
        if spec["name"] == name:
            return spec
        inner = spec.get("config", {}).get("layers")
        if isinstance(inner, list):
            for s in inner:
                if s["name"] == name:
                    return s
    raise KeyError(name)


@pytest.mark.parametrize("layers", [7, ["conv", "bn"], [None], "abc", {"a": 1}])
@pytest.mark.parametrize("container", ["h5", "keras"])
def test_layers_not_a_list_of_layer_objects(tmp_path, layers, container):
    cfg = keras2_config()
    cfg["config"]["layers"] = layers
    path = tmp_path / f"m.{container}"
    if container == "h5":
        _write_h5(path, cfg)
    else:
        _write_keras_zip(path, cfg)
    with pytest.raises(ModelError, match=r"m\.(h5|keras)"):
        qsim.load_model(path)


@pytest.mark.parametrize("config", [None, 3, [], "text"])
def test_keras_config_json_not_an_object(tmp_path, config):
    path = tmp_path / "m.keras"
    _write_keras_zip(path, config)
    with pytest.raises(ModelError, match=r"m\.keras.*config\.json.*not a Keras model config"):
        qsim.load_model(path)


def test_weight_dataset_of_strings(tmp_path):
    weights = keras2_weights()
    path = tmp_path / "str.h5"
    write_legacy_h5(path, weights=weights)
    with h5py.File(path, "a") as f:
        del f["model_weights/side/side/bias:0"]
        f["model_weights/side"].create_dataset("side/bias:0", data=np.array([b"x"] * 8))
    with pytest.raises(ModelError, match=r"str\.h5.*'side'.*'bias'.*not numeric"):
        qsim.load_model(path)


def test_kernel_shape_must_match_kernel_size(tmp_path):
    """The issue's case: a 3x3 kernel stored where the config says kernel_size [1, 1]."""
    weights = keras2_weights()
    weights["side"]["side/kernel:0"] = np.zeros((3, 3, 3, 8), np.float32)
    path = tmp_path / "k.h5"
    write_legacy_h5(path, weights=weights)
    with pytest.raises(ModelError, match=r"k\.h5.*'side'.*kernel.*\(3, 3, 3, 8\).*kernel_size \[1, 1\]"):
        qsim.load_model(path)


@pytest.mark.parametrize("field, value, match", [
    ("kernel_size", "three", "kernel_size"),
    ("kernel_size", [2, 2], "kernel_size"),
    ("filters", -4, "filters"),
    ("filters", 7, "filters"),
    ("filters", "8", "filters"),
    ("strides", [0, 1], "strides"),
    ("strides", [True, 1], "strides"),
])
def test_conv_config_fields_are_checked(tmp_path, field, value, match):
    cfg = copy.deepcopy(keras2_config())
    _layer(cfg, "side")["config"][field] = value
    path = tmp_path / "c.h5"
    write_legacy_h5(path, config=cfg)
    with pytest.raises(ModelError, match=rf"c\.h5.*'side.*{match}"):
        qsim.load_model(path)


def test_depthwise_multiplier_and_bias_length_checked(tmp_path):
    cfg = copy.deepcopy(keras2_config())
    _layer(cfg, "dw")["config"]["depth_multiplier"] = 3  # stored kernel has multiplier 2
    path = tmp_path / "d.h5"
    write_legacy_h5(path, config=cfg)
    with pytest.raises(ModelError, match=r"'dw'.*depth_multiplier"):
        qsim.load_model(path)
    weights = keras2_weights()
    weights["head"]["head/bias:0"] = np.zeros(4, np.float32)
    path2 = tmp_path / "b.h5"
    write_legacy_h5(path2, weights=weights)
    with pytest.raises(ModelError, match=r"'head'.*bias.*\(4,\)"):
        qsim.load_model(path2)
