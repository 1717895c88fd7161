"""reference.models: the paper's A/B/C heads, alpha, frozen prefix and layer names."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def models(tf):
    from reference import models as models_mod

    return models_mod


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_head_shapes_and_names(models, data_dir, alpha):
    import keras

    # One flexible-size model per head; predicting at two sizes checks the strides.
    for head, stride in models.HEAD_STRIDES.items():
        model = models.build_model(head, alpha=alpha, frozen=98)
        names = [layer.name for layer in model.layers]
        assert names[-1] == "head"
        assert all(not isinstance(layer, keras.Model) for layer in model.layers)  # flat
        assert ("out_relu" in names) == (head != "A")
        assert "block_13_expand_relu" in names
        for h, w in [(224, 224), (240, 320)]:
            if head == "C" and (h, w) == (240, 320):
                continue  # 240/16 = 15 is odd: A and up(B) differ, documented in models.py
            out = model.predict(np.zeros((1, h, w, 3), np.float32), verbose=0)
            assert out.shape == (1, _floor_out(h, stride), _floor_out(w, stride), 125), (head, h, w)
        feat_a = model.get_layer("block_13_expand_relu").output
        assert feat_a.shape[-1] == int(576 * alpha)


def _floor_out(n, stride):
    # With a None input size Keras pads every stride-2 conv by (0, 1): each halving floors.
    while stride > 1:
        n, stride = n // 2, stride // 2
    return n


def _ceil_out(n, stride):
    # With a known input size Keras pads odd sizes by (1, 1): each halving rounds up.
    while stride > 1:
        n, stride = -(-n // 2), stride // 2
    return n


def test_fixed_vs_flexible_input_padding(models, data_dir):
    """A 240x320 input gives different map sizes with a fixed and a None input shape."""
    fixed = models.build_model("B", alpha=0.5, input_shape=(240, 320, 3), weights=None)
    assert fixed.output.shape[1:3] == (_ceil_out(240, 32), _ceil_out(320, 32)) == (8, 10)
    flexible = models.build_model("B", alpha=0.5, weights=None)
    out = flexible.predict(np.zeros((1, 240, 320, 3), np.float32), verbose=0)
    assert out.shape[1:3] == (_floor_out(240, 32), _floor_out(320, 32)) == (7, 10)


def test_frozen_prefix_and_paper_indices(models, data_dir):
    model = models.build_model("A", alpha=1.0, frozen=98)
    names = [layer.name for layer in model.layers]
    cut = names.index("block_10_project_BN")
    assert names[cut + 1] == "block_11_expand"
    assert cut == 97  # paper ℓ=98 → today's layers[0:98]
    assert all(not layer.trainable for layer in model.layers[: cut + 1])
    assert all(layer.trainable for layer in model.layers[cut + 1:])
    assert not any(layer.trainable_weights for layer in model.layers[: cut + 1])
    assert models.frozen_layer_name(63) == "block_6_project_BN"
    assert models.frozen_layer_name(133) == "block_14_project_BN"
    with pytest.raises(ValueError, match="frozen=97"):
        models.frozen_layer_name(97)
    with pytest.raises(ValueError, match="head='D'"):
        models.build_model("D")


def test_imagenet_weights_loaded_for_alpha1_only(models, data_dir):
    import h5py

    model = models.build_model("A", alpha=1.0, frozen=98)
    kernel = model.get_layer("Conv1").get_weights()[0]
    with h5py.File(models.imagenet_weights_path(), "r") as f:
        group = f["Conv1"]
        stored = [np.asarray(group[k]) for k in _datasets(group)]
    assert any(s.shape == kernel.shape and np.array_equal(s, kernel) for s in stored)
    # Same seed → same random head; different seed → different head.
    h0 = models.build_model("B", alpha=0.5, frozen=None, seed=0).get_layer("Conv1").get_weights()[0]
    h0b = models.build_model("B", alpha=0.5, frozen=None, seed=0).get_layer("Conv1").get_weights()[0]
    h1 = models.build_model("B", alpha=0.5, frozen=None, seed=1).get_layer("Conv1").get_weights()[0]
    assert np.array_equal(h0, h0b) and not np.array_equal(h0, h1)


def _datasets(group):
    import h5py

    found = []
    group.visit(lambda name: found.append(name) if isinstance(group[name], h5py.Dataset) else None)
    return found
