"""Hand-written Keras 2-era model files (h5py only, no TensorFlow) for importer tests.

`keras2_config()` is a Keras 2.x functional config (list-style ``inbound_nodes``,
``batch_input_shape``, nested ``Functional`` backbone referenced with node index 1 as
Keras 2 wrote it); `write_legacy_h5` writes it the way Keras 2's ``model.save("m.h5")``
did (``model_config`` attribute, ``model_weights`` groups, ``name:0`` weight names,
``depthwise_kernel``). `expected_graph` is the same network built directly as IR nodes.
"""
from __future__ import annotations

import json

import h5py
import numpy as np

from qsim.graph.ir import Graph, Node


def _layer(cls, name, inbound, **cfg):
    cfg = {"name": name, "trainable": True, "dtype": "float32", **cfg}
    nodes = [[[src, idx, 0, {}] for src, idx in inbound]] if inbound is not None else []
    return {"class_name": cls, "config": cfg, "name": name, "inbound_nodes": nodes}


def keras2_config(input_hw=(None, None)) -> dict:
    backbone = {
        "class_name": "Functional",
        "config": {
            "name": "backbone",
            "layers": [
                {"class_name": "InputLayer", "name": "in_b", "inbound_nodes": [],
                 "config": {"batch_input_shape": [None, None, None, 3], "dtype": "float32",
                            "sparse": False, "ragged": False, "name": "in_b"}},
                _layer("Conv2D", "conv", [("in_b", 0)], filters=4, kernel_size=[3, 3], strides=[2, 2],
                       padding="same", data_format="channels_last", dilation_rate=[1, 1], groups=1,
                       activation="linear", use_bias=False),
                _layer("BatchNormalization", "bn", [("conv", 0)], axis=[3], momentum=0.99, epsilon=0.001,
                       center=True, scale=True),
                _layer("ReLU", "relu", [("bn", 0)], max_value=6.0, negative_slope=0.0, threshold=0.0),
                _layer("ZeroPadding2D", "pad", [("relu", 0)], padding=[[0, 1], [0, 1]],
                       data_format="channels_last"),
                _layer("DepthwiseConv2D", "dw", [("pad", 0)], kernel_size=[3, 3], strides=[2, 2],
                       padding="valid", data_format="channels_last", dilation_rate=[1, 1],
                       depth_multiplier=2, activation="linear", use_bias=True),
            ],
            "input_layers": [["in_b", 0, 0]],
            "output_layers": [["dw", 0, 0]],
        },
        "name": "backbone",
        "inbound_nodes": [[["image", 0, 0, {}]]],
    }
    layers = [
        {"class_name": "InputLayer", "name": "image", "inbound_nodes": [],
         "config": {"batch_input_shape": [None, *input_hw, 3], "dtype": "float32", "sparse": False,
                    "ragged": False, "name": "image"}},
        backbone,
        _layer("Dropout", "drop", [("backbone", 1)], rate=0.5),
        _layer("UpSampling2D", "up", [("drop", 0)], size=[2, 2], data_format="channels_last",
               interpolation="bilinear"),
        _layer("Conv2D", "side", [("image", 0)], filters=8, kernel_size=[1, 1], strides=[2, 2],
               padding="valid", data_format="channels_last", dilation_rate=[1, 1], groups=1,
               activation="relu", use_bias=True),
        _layer("Add", "add", [("up", 0), ("side", 0)]),
        _layer("Concatenate", "cat", [("add", 0), ("up", 0)], axis=-1),
        _layer("Conv2D", "head", [("cat", 0)], filters=5, kernel_size=[3, 3], strides=[1, 1],
               padding="same", data_format="channels_last", dilation_rate=[1, 1], groups=1,
               activation="linear", use_bias=True),
        _layer("Activation", "prob", [("head", 0)], activation="sigmoid"),
    ]
    return {"class_name": "Functional", "config": {"name": "k2net", "layers": layers,
            "input_layers": [["image", 0, 0]], "output_layers": [["prob", 0, 0]]},
            "keras_version": "2.13.1", "backend": "tensorflow"}


def keras2_weights(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """{top-level layer: {weight name as Keras 2 wrote it: array}}."""
    rng = np.random.default_rng(seed)
    f = np.float32
    return {
        "backbone": {
            "conv/kernel:0": rng.normal(0, 0.5, (3, 3, 3, 4)).astype(f),
            "bn/gamma:0": rng.uniform(0.5, 1.5, 4).astype(f),
            "bn/beta:0": rng.normal(0, 0.3, 4).astype(f),
            "bn/moving_mean:0": rng.normal(0, 0.3, 4).astype(f),
            "bn/moving_variance:0": rng.uniform(0.3, 2, 4).astype(f),
            "dw/depthwise_kernel:0": rng.normal(0, 0.5, (3, 3, 4, 2)).astype(f),
            "dw/bias:0": rng.normal(0, 0.1, 8).astype(f),
        },
        "side": {"side/kernel:0": rng.normal(0, 0.5, (1, 1, 3, 8)).astype(f),
                 "side/bias:0": rng.normal(0, 0.1, 8).astype(f)},
        "head": {"head/kernel:0": rng.normal(0, 0.3, (3, 3, 16, 5)).astype(f),
                 "head/bias:0": rng.normal(0, 0.1, 5).astype(f)},
    }


def _write_groups(group, config: dict, weights: dict) -> None:
    names = [spec["name"] for spec in config["config"]["layers"]]
    group.attrs["layer_names"] = np.array([n.encode() for n in names])
    group.attrs["backend"] = b"tensorflow"
    group.attrs["keras_version"] = b"2.13.1"
    for name in names:
        g = group.create_group(name)
        layer_w = weights.get(name, {})
        g.attrs["weight_names"] = np.array([w.encode() for w in layer_w])
        for wname, arr in layer_w.items():
            g.create_dataset(wname, data=arr)


def write_legacy_h5(path, config: dict | None = None, weights: dict | None = None) -> None:
    """A Keras 2-style full-model .h5 (``model_config`` + ``model_weights``)."""
    config = config or keras2_config()
    weights = weights if weights is not None else keras2_weights()
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = b"2.13.1"
        f.attrs["backend"] = b"tensorflow"
        _write_groups(f.create_group("model_weights"), config, weights)


def write_legacy_weights(path, config: dict | None = None, weights: dict | None = None) -> None:
    """A Keras 2-style weights-only .h5 (groups at the root, no model_config)."""
    config = config or keras2_config()
    with h5py.File(path, "w") as f:
        _write_groups(f, config, weights if weights is not None else keras2_weights())


def expected_graph(weights: dict | None = None) -> Graph:
    """The same network as IR nodes, built by hand (BN unfolded, pads as written)."""
    w = weights if weights is not None else keras2_weights()
    b, s, h = w["backbone"], w["side"], w["head"]
    conv = {"strides": (2, 2), "pads": "same", "dilation": (1, 1)}
    nodes = [
        Node("image", "input", [], {"shape": (None, None, 3)}),
        Node("conv", "conv2d", ["image"], dict(conv), {"kernel": b["conv/kernel:0"]}),
        Node("bn", "batch_norm", ["conv"], {"epsilon": 0.001},
             {"gamma": b["bn/gamma:0"], "beta": b["bn/beta:0"], "mean": b["bn/moving_mean:0"],
              "variance": b["bn/moving_variance:0"]}),
        Node("relu", "relu", ["bn"], {"max_value": 6.0}),
        Node("pad", "pad", ["relu"], {"pads": (0, 1, 0, 1)}),
        Node("dw", "depthwise_conv2d", ["pad"], {"strides": (2, 2), "pads": (0, 0, 0, 0), "dilation": (1, 1)},
             {"kernel": b["dw/depthwise_kernel:0"], "bias": b["dw/bias:0"]}),
        Node("up", "upsample", ["dw"], {"size": (2, 2), "interpolation": "bilinear"}),
        Node("side_linear", "conv2d", ["image"], {"strides": (2, 2), "pads": (0, 0, 0, 0), "dilation": (1, 1)},
             {"kernel": s["side/kernel:0"], "bias": s["side/bias:0"]}),
        Node("side", "relu", ["side_linear"], {"max_value": None}),
        Node("add", "add", ["up", "side"]),
        Node("cat", "concat", ["add", "up"], {"axis": -1}),
        Node("head", "conv2d", ["cat"], {"strides": (1, 1), "pads": "same", "dilation": (1, 1)},
             {"kernel": h["head/kernel:0"], "bias": h["head/bias:0"]}),
        Node("prob", "sigmoid", ["head"]),
    ]
    return Graph(nodes, ["prob"], name="k2net")
