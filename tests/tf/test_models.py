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


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.35])
def test_imagenet_weights_loaded_by_layer_order(models, data_dir, alpha):
    """Each alpha's file lands on the right layers: the stem's and the last conv's kernels
    equal the file's (the 0.5 / 0.35 files name them differently, so order decides)."""
    import h5py

    model = models.build_model("B", alpha=alpha, frozen=98)
    with h5py.File(models.imagenet_weights_path(alpha), "r") as f:
        stored = [np.asarray(f[name]) for name in _datasets(f)]
    for name in ("Conv1", "Conv_1"):
        kernel = model.get_layer(name).get_weights()[0]
        assert any(s.shape == kernel.shape and np.array_equal(s, kernel) for s in stored), name
    with pytest.raises(ValueError, match="alpha=0.75"):
        models.imagenet_weights_path(0.75)


def test_random_init_is_seeded(models):
    # Same seed → same random backbone and head; different seed → different ones.
    def stem(seed):
        model = models.build_model("B", alpha=0.75, frozen=None, seed=seed)
        return model.get_layer("Conv1").get_weights()[0]

    assert np.array_equal(stem(0), stem(0)) and not np.array_equal(stem(0), stem(1))


def _datasets(group):
    import h5py

    found = []
    group.visit(lambda name: found.append(name) if isinstance(group[name], h5py.Dataset) else None)
    return found


# --- reference.data: crops and targets ---------------------------------------------------

class _FakeImage:
    def __init__(self, path, boxes):
        self.path, self.boxes = path, np.asarray(boxes, np.float64)


@pytest.fixture(scope="module")
def square_image(tmp_path_factory):
    """A black 300x400 picture with one white 'face' at x 100..140, y 60..110."""
    from PIL import Image

    arr = np.zeros((300, 400, 3), np.uint8)
    arr[60:110, 100:140] = 255
    path = tmp_path_factory.mktemp("crops") / "square.png"
    Image.fromarray(arr).save(path)
    return _FakeImage(path, [[100, 60, 140, 110]])


def test_crop_boxes_follow_the_pixels(square_image):
    from qsim.facedet.templates import load_templates
    from reference import data

    crops = data.make_crops([square_image], 40, load_templates(), size=200, seed=3)
    assert crops.images.shape == (40, 200, 200, 3) and crops.flipped.any() and not crops.flipped.all()
    checked = 0
    for image, boxes, scale in zip(crops.images, crops.boxes, crops.scales):
        assert boxes.shape == (1, 4)
        x1, y1, x2, y2 = boxes[0]
        if 0 < x1 and x2 < 200:  # not clipped by the crop: scaled exactly
            assert x2 - x1 == pytest.approx(40 * scale, abs=1)
        if 0 < y1 and y2 < 200:
            assert y2 - y1 == pytest.approx(50 * scale, abs=1)
        grey = image[..., 0].astype(int)
        # Enlarging blurs an edge over one source pixel = `scale` crop pixels.
        m = int(np.ceil(max(scale, 1.0) / 2)) + 1
        inner = grey[int(np.ceil(y1)) + m: int(y2) - m, int(np.ceil(x1)) + m: int(x2) - m]
        assert inner.size and inner.min() >= 250
        # Just outside the box (inside the crop) the picture is black or padding.
        for y, x in [(int(y1) - m, int((x1 + x2) / 2)), (int((y1 + y2) / 2), int(x2) + m)]:
            if 0 <= y < 200 and 0 <= x < 200:
                assert grey[y, x] in (0, data.PAD_VALUE) or grey[y, x] < 5
                checked += 1
    assert checked > 20


def test_crops_are_deterministic(square_image):
    from qsim.facedet.templates import load_templates
    from reference import data

    t = load_templates()
    a = data.make_crops([square_image], 6, t, size=128, seed=7)
    b = data.make_crops([square_image], 6, t, size=128, seed=7)
    c = data.make_crops([square_image], 6, t, size=128, seed=8)
    assert np.array_equal(a.images, b.images) and all(np.array_equal(x, y) for x, y in zip(a.boxes, b.boxes))
    assert not np.array_equal(a.images, c.images)


def test_crop_boxes_drop_small_and_cut_faces():
    from reference import data

    boxes = np.array([[10, 10, 30, 30], [0, 0, 4, 20], [90, 10, 130, 50], [70, 60, 98, 90]], float)
    out = data.crop_boxes(boxes, 1.0, 1.0, 0, 0, 100)
    # the 4-px-wide face and the one mostly outside are dropped; the last is clipped to 100
    assert out.tolist() == [[10, 10, 30, 30], [70, 60, 98, 90]]
    out2 = data.crop_boxes(boxes[:1], 2.0, 0.5, 5, 1, 100)
    assert out2.tolist() == [[15, 4, 55, 14]]


def test_targets_for_an_anchor_shaped_face():
    from qsim.facedet import coding
    from qsim.facedet.templates import load_templates
    from reference import data

    t = load_templates()
    anc = coding.anchors(8, 8, 16, t)
    face = anc[3, 4, 20]  # template 20 at cell (3, 4)
    labels, deltas = data.targets_for(face[None], 8, 8, 16, t)
    assert labels.shape == (8, 8, 25) and deltas.shape == (8, 8, 25, 4)
    assert labels[3, 4, 20] == 1 and np.abs(deltas[3, 4, 20]).max() < 1e-12
    assert set(np.unique(labels)) <= {-1, 0, 1} and (deltas[labels != 1] == 0).all()
    empty_labels, _ = data.targets_for(np.zeros((0, 4)), 8, 8, 16, t)
    assert (empty_labels == 0).all()


def test_preprocess_is_mobilenet_v2():
    from reference import data

    x = np.array([[[[0, 127, 255]]]], np.uint8)
    got = data.preprocess(x)
    assert got.dtype == np.float32
    assert got.tolist() == [[[[-1.0, float(np.float32(127) / np.float32(127.5) - np.float32(1)), 1.0]]]]


# --- reference.train: minibatch sampling, eq. (4), tail model ------------------------------

def test_sample_weights_faster_rcnn_minibatch():
    from reference import train

    rng = np.random.default_rng(0)
    labels = rng.choice(np.array([-1, 0, 1], np.int8), size=(3, 9, 9, 25), p=[0.2, 0.5, 0.3])
    labels[2] = np.where(labels[2] == 1, 0, labels[2])
    labels[2, 0, 0, :3] = 1  # few positives: the rest of the 256 are negatives
    cls_w, pos_w = train.sample_weights(labels, rng)
    for b in range(3):
        assert cls_w[b].sum() == 256
        assert (cls_w[b][labels[b] == -1] == 0).all()
        assert (pos_w[b] == cls_w[b] * (labels[b] == 1)).all()
    assert pos_w[0].sum() == 128 and pos_w[2].sum() == 3


def test_loss_is_equation_4(tf):
    from reference import train

    rng = np.random.default_rng(1)
    out = rng.normal(size=(2, 3, 4, 125)).astype(np.float32)
    labels = rng.choice(np.array([-1, 0, 1], np.int8), size=(2, 3, 4, 25))
    deltas = rng.normal(size=(2, 3, 4, 25, 4)).astype(np.float16)
    cls_w = (labels >= 0) * rng.integers(0, 2, labels.shape).astype(np.float32)
    pos_w = cls_w * (labels == 1)
    l_cls, l_reg = train.make_loss_fn(1.0)(out, labels, deltas, cls_w, pos_w)
    # Plain NumPy (float64): p = sigmoid(logit), CE = -[y log p + (1-y) log(1-p)].
    o = out.astype(np.float64)
    p = 1 / (1 + np.exp(-o[..., :25]))
    y = (labels == 1).astype(float)
    ce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    pred = np.stack([o[..., 25 + 25 * k: 50 + 25 * k] for k in range(4)], axis=-1)
    mse = ((pred - deltas.astype(np.float64)) ** 2).mean(axis=-1)
    want_cls = np.mean([(ce[b] * cls_w[b]).sum() / 256 for b in range(2)])
    want_reg = np.mean([(mse[b] * pos_w[b]).sum() / 4 for b in range(2)])
    assert float(l_cls) == pytest.approx(want_cls, rel=1e-5)
    assert float(l_reg) == pytest.approx(want_reg, rel=1e-5)


def test_tail_model_shares_layers_with_full_model(models, data_dir):
    import keras

    from reference import train

    model = models.build_model("A", alpha=1.0, frozen=98)
    cut = models.frozen_layer_name(98)
    prefix = keras.Model(model.input, model.get_layer(cut).output)
    tail = train.tail_model(model, cut)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 96, 128, 3)).astype(np.float32)
    full = model.predict(x, verbose=0)
    split = tail.predict(prefix.predict(x, verbose=0), verbose=0)
    np.testing.assert_allclose(split, full, rtol=1e-5, atol=1e-5)
    # Same layer objects: a change through the tail is seen by the full model.
    tail.get_layer("head").set_weights([w + 1 for w in tail.get_layer("head").get_weights()])
    assert np.array_equal(model.get_layer("head").get_weights()[1], np.ones(125, np.float32))
    assert {w.path for w in tail.trainable_weights} == {w.path for w in model.trainable_weights}


def test_cache_boundary_crosses_residual_adds(models):
    from reference import train

    model = models.build_model("B", alpha=0.5, frozen=133, weights=None)
    assert train.cache_boundary(model, models.frozen_layer_name(98)) == "block_10_project_BN"
    assert train.cache_boundary(model, models.frozen_layer_name(63)) == "block_6_project_BN"
    # block_14_add reads block_13_project_BN and block_14_project_BN: cut after the add.
    assert train.cache_boundary(model, models.frozen_layer_name(133)) == "block_14_add"
    tail = train.tail_model(model, "block_14_add")
    assert tail.output.shape[-1] == 125 and "block_14_add" not in [layer.name for layer in tail.layers[1:]]


def test_sample_weights_hard_negatives_take_the_highest_logits():
    from reference import train

    rng = np.random.default_rng(2)
    labels = np.zeros((1, 20, 20, 25), np.int8)
    labels[0, 0, 0, :4] = 1
    logits = rng.normal(size=labels.shape).astype(np.float32)
    cls_w, pos_w = train.sample_weights(labels, rng, logits, hard_fraction=0.5)
    neg_logits = logits[(cls_w > 0) & (labels == 0)]
    assert cls_w.sum() == 256 and pos_w.sum() == 4 and neg_logits.size == 252
    # the 126 hardest negatives of the whole map are all in the sample
    all_neg = np.sort(logits[labels == 0])[::-1]
    assert np.isin(all_neg[:126], neg_logits).all()
    cls_easy, _ = train.sample_weights(labels, np.random.default_rng(2), logits, hard_fraction=0.0)
    assert not np.isin(all_neg[:126], logits[(cls_easy > 0) & (labels == 0)]).all()


# --- the committed trained detector ----------------------------------------------------------

def test_committed_a98_model_loads_and_finds_faces(tf, data_dir):
    import json

    import keras

    from qsim.datasets import REPO_ROOT
    from qsim.facedet import coding
    from qsim.facedet.boxes import iou_matrix
    from qsim.facedet.fddb import load_fddb
    from qsim.images import load_image, mobilenet_preprocess

    path = REPO_ROOT / "qsim" / "assets" / "a98_alpha1.0.h5"
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["architecture"]["head"] == "A" and record["architecture"]["frozen"] == 98
    assert "reference.train" in record["command"] and len(record["git_commit"]) == 40
    assert record["history"] and record["final"]["val_loss"] < record["history"][0]["val_loss"]

    model = keras.models.load_model(path, compile=False)
    names = [layer.name for layer in model.layers]
    assert names[-2:] == ["block_13_expand_relu", "head"] and model.output.shape[-1] == 125
    import qsim

    graph = qsim.load_model(path)  # qsim's own h5py importer reads the same file
    assert graph.name == model.name
    # On a few FDDB images (never trained on), the top-scoring box lies on a face.
    hits = 0
    images = load_fddb().images[:5]
    for im in images:
        x = mobilenet_preprocess(load_image(im.path))[None].astype(np.float32)
        out = model.predict(x, verbose=0)[0]
        assert out.shape[:2] == (x.shape[1] // 16, x.shape[2] // 16)
        boxes, scores = coding.decode(out, 16, score_threshold=0.0)
        hits += iou_matrix(im.boxes, boxes[:1]).max() >= 0.3
    assert hits >= 4, f"top box on a face in only {hits}/{len(images)} FDDB images"
