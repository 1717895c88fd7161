"""Tiny Keras models and images for the CLI tests (built once per session, in a tmp folder).

* ``fc.h5``: fully convolutional MobileNetV2-like block (conv/BN/ReLU6, depthwise, residual
  add) ending in a 125-channel 1x1 ``head``, so `qsim run` decodes detections;
* ``fixed.h5``: the same with a fixed 24x20 input (images are resized to it);
* ``grey.h5``: a 1-channel input (RGB images do not fit it);
* ``images/``: three small RGB JPEG/PNG images of different sizes.
"""
from __future__ import annotations

import numpy as np
import pytest


def _block(keras, x, tag):
    L = keras.layers
    y = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name=f"{tag}conv")(x)
    y = L.BatchNormalization(name=f"{tag}bn")(y)
    y = L.ReLU(6.0, name=f"{tag}relu")(y)
    z = L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{tag}dw")(y)
    z = L.BatchNormalization(name=f"{tag}dw_bn")(z)
    z = L.ReLU(6.0, name=f"{tag}dw_relu")(z)
    z = L.Conv2D(8, 1, name=f"{tag}project")(z)
    y = L.Add(name=f"{tag}add")([y, z])
    return L.Conv2D(125, 1, name="head")(y)


def _model(keras, shape, seed):
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=shape, name="image")
    model = keras.Model(inp, _block(keras, inp, ""), name=f"tiny{seed}")
    # non-trivial BN statistics, so folding is exercised
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            rng = np.random.default_rng(seed)
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.uniform(-0.5, 0.5, b.shape),
                               rng.uniform(-0.2, 0.2, m.shape), rng.uniform(0.5, 2.0, v.shape)])
    return model


@pytest.fixture(scope="session")
def tiny(tf, tmp_path_factory):
    import keras
    from PIL import Image

    root = tmp_path_factory.mktemp("tiny")
    paths = {}
    for name, shape, seed in (("fc", (None, None, 3), 1), ("fixed", (24, 20, 3), 2), ("grey", (None, None, 1), 3)):
        paths[name] = root / f"{name}.h5"
        _model(keras, shape, seed).save(paths[name])
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w, ext) in enumerate(((32, 32, "png"), (40, 28, "jpg"), (30, 36, "png"))):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images / f"img{i}.{ext}")
    paths["images"] = images
    paths["image"] = images / "img0.png"
    (root / "empty").mkdir()
    paths["empty"] = root / "empty"
    return paths
