"""The float executor matches TensorFlow at every layer of the paper's model family.

For A98, B133 and C98 at alpha 1.0 (ImageNet weights) and 0.5 (random weights), exported
as legacy .h5 and Keras 3 .keras, with BN folding on and off, on a square and a
non-square input: max |err| <= 1e-4 · max |activation| at every node that still exists
(with folding, a merged conv is compared with the BatchNorm it is named after).
BN moving statistics are randomised so folding is really exercised.
"""
from __future__ import annotations

import numpy as np
import pytest

# Keras' TF backend converts tensors with np.array(x, copy=False): thousands of NumPy 2 warnings.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

REL_TOL = 1e-4
MODELS = [("A", 98, 1.0), ("B", 133, 1.0), ("C", 98, 1.0), ("A", 98, 0.5), ("B", 133, 0.5), ("C", 98, 0.5)]
# Multiples of 32 (head C needs A's map to be twice B's) but not of 64 for 96/160, so the
# stride-32 maps are odd (3, 5) and the last stride-2 layers pad an odd input.
SIZES = [(128, 128), (96, 160)]


def randomise_bn(model, seed: int) -> None:
    """Non-trivial gamma/beta/moving mean/variance in every BatchNorm (keeps ImageNet convs)."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([
                rng.uniform(0.5, 1.5, c).astype(np.float32),
                rng.normal(0, 0.2, c).astype(np.float32),
                rng.normal(0, 0.2, c).astype(np.float32),
                rng.uniform(0.3, 2.0, c).astype(np.float32),
            ])


@pytest.fixture(scope="module", params=MODELS, ids=lambda p: f"{p[0]}{p[1]}-alpha{p[2]}")
def exported(request, tf, data_dir, tmp_path_factory):
    """(files {"h5", "keras"}, {size: TF trace}) for one model, built and traced once."""
    from reference.export import export_all
    from reference.models import build_model
    from reference.tf_trace import trace_model

    head, frozen, alpha = request.param
    weights = "imagenet" if alpha == 1.0 else None
    model = build_model(head, alpha=alpha, frozen=frozen, weights=weights, seed=1)
    if alpha != 1.0:
        randomise_bn(model, seed=2)
    files = export_all(model, tmp_path_factory.mktemp("models") / f"{head}{frozen}")
    rng = np.random.default_rng(3)
    traces = {}
    for size in SIZES:
        x = rng.uniform(-1, 1, (1, *size, 3)).astype(np.float32)
        traces[size] = (x, trace_model(model, x))
    return files, traces


def assert_matches(values: dict, reference: dict, label: str) -> int:
    compared = 0
    for name, got in values.items():
        if name not in reference:
            continue
        want = reference[name]
        assert got.shape == want.shape, (label, name, got.shape, want.shape)
        scale = float(np.max(np.abs(want))) or 1.0
        err = float(np.max(np.abs(got.astype(np.float64) - want)))
        assert err <= REL_TOL * scale, f"{label}: {name}: max|err| {err:.3g} > {REL_TOL}·{scale:.3g}"
        compared += 1
    return compared


@pytest.mark.parametrize("fmt", ["h5", "keras"])
@pytest.mark.parametrize("fold_bn", [True, False], ids=["folded", "unfolded"])
def test_float_executor_matches_tf_every_layer(exported, fmt, fold_bn):
    import qsim
    from qsim.executors import float_exec

    files, traces = exported
    graph = qsim.load_model(files[fmt], fold_bn=fold_bn)
    assert ("batch_norm" in {n.op for n in graph}) == (not fold_bn)
    for size, (x, reference) in traces.items():
        trace = float_exec.run(graph, x)
        label = f"{files[fmt].name} fold_bn={fold_bn} {size}"
        compared = assert_matches(trace.values, reference, label)
        # Every surviving node is named after a TF layer (merged convs after their BN,
        # fused pads vanish into the conv): nothing may be silently left uncompared.
        expected = sum(1 for n in graph if n.name in reference)
        assert compared == expected == len(graph), (label, compared, expected, len(graph))
        out = graph.outputs[0]
        assert np.array_equal(trace.outputs[out], trace.values[out])


def test_fixed_input_size_gives_explicit_pads_and_same_numbers(exported):
    """A graph loaded at a known size has no "same" pads left and computes the same values."""
    import qsim
    from qsim.executors import float_exec

    files, traces = exported
    size, (x, reference) = next(iter(traces.items()))
    graph = qsim.load_model(files["h5"], input_hw=size)
    assert all(n.attrs.get("pads") != "same" for n in graph)
    assert assert_matches(float_exec.run(graph, x).values, reference, "fixed size") == len(graph)


def test_upsample_bilinear_matches_keras(tf):
    """Keras 3 UpSampling2D bilinear (half-pixel) on odd/even sizes and factors 2, 3: bit-equal."""
    import keras

    from qsim.kernels import float_ops

    rng = np.random.default_rng(0)
    for h, w in [(1, 1), (3, 5), (4, 4), (7, 2), (10, 13)]:
        for size in [(2, 2), (3, 2), (2, 5)]:
            x = rng.normal(size=(2, h, w, 3)).astype(np.float32)
            want = keras.layers.UpSampling2D(size, interpolation="bilinear")(x).numpy()
            got = float_ops.upsample_bilinear(x, size)
            np.testing.assert_array_equal(got, want)
            want = keras.layers.UpSampling2D(size, interpolation="nearest")(x).numpy()
            np.testing.assert_array_equal(float_ops.upsample_nearest(x, size), want)


@pytest.fixture(scope="module")
def nested_backbone(tf, tmp_path_factory):
    """MobileNetV2 (alpha 0.35) used as a *layer* of an outer model, plus an outer head."""
    import keras

    keras.utils.set_random_seed(5)
    backbone = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=0.35,
                                              input_shape=(None, None, 3))
    randomise_bn(backbone, seed=6)
    inp = keras.Input((None, None, 3), name="image")
    feat = backbone(inp)
    x = keras.layers.Dropout(0.3, name="drop")(feat)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu6", name="neck")(x)
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name="up")(x)
    out = keras.layers.Conv2D(5, 1, activation="sigmoid", name="out")(x)
    model = keras.Model(inp, out, name="nested")
    folder = tmp_path_factory.mktemp("nested")
    from reference.export import export_all, export_weights

    files = export_all(model, folder / "nested")
    files["legacy_weights"], arch = export_weights(model, folder / "w.h5", folder / "arch.json")
    files["keras3_weights"], _ = export_weights(model, folder / "w.weights.h5", folder / "arch2.json")
    return model, files, arch


@pytest.mark.parametrize("kind", ["h5", "keras", "legacy_weights", "keras3_weights"])
def test_nested_backbone_is_flattened_and_matches_tf(nested_backbone, kind):
    import qsim
    from qsim.executors import float_exec
    from reference.tf_trace import trace_model

    model, files, arch = nested_backbone
    graph = qsim.load_model(files[kind], arch=arch if "weights" in kind else None, fold_bn=False)
    assert "block_16_project_BN" in graph and "mobilenetv2_0.35_None" not in graph
    x = np.random.default_rng(7).uniform(-1, 1, (1, 64, 96, 3)).astype(np.float32)
    reference = trace_model(model, x)
    trace = float_exec.run(graph, x)
    # Conv2D(activation=...) is split: "<name>_linear" (the conv) has no TF counterpart.
    split = [n.name for n in graph if n.name.endswith("_linear")]
    assert split == ["neck_linear", "out_linear"]
    assert assert_matches(trace.values, reference, kind) == len(graph) - len(split)


def test_imagenet_weights_file_with_keras_architecture(tf, data_dir):
    """The shared legacy weights-only file (TF-slim ImageNet) + Keras' MobileNetV2 JSON."""
    import keras

    import qsim
    from qsim.executors import float_exec
    from reference.tf_trace import trace_model

    path = data_dir / "weights" / "mobilenet_v2_1.0_224_no_top_tfslim.h5"
    model = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(None, None, 3))
    model.load_weights(str(path))
    graph = qsim.load_model(path, arch=model.to_json())
    x = np.random.default_rng(8).uniform(-1, 1, (1, 96, 64, 3)).astype(np.float32)
    assert assert_matches(float_exec.run(graph, x).values, trace_model(model, x), "imagenet") == len(graph)


def test_unsupported_keras_layer_is_named(tf, tmp_path):
    import keras

    import qsim

    inp = keras.Input((8, 8, 3), name="x")
    out = keras.layers.Cropping2D(1, name="crop")(keras.layers.Conv2D(2, 1, name="c")(inp))
    path = tmp_path / "crop.keras"
    keras.Model(inp, out).save(path)
    with pytest.raises(qsim.QsimError, match=r"crop\.keras: layer 'crop' has unsupported type 'Cropping2D'"):
        qsim.load_model(path)


def test_symmetric_pads_equal_keras_full_padding(tf, tmp_path):
    """Paper §V-D: rewriting TF's (0, 1) stride-2 padding to symmetric (1, 1) gives exactly the
    network whose Keras JSON was edited to pad ((1, 1), (1, 1)) (and Conv1 by an explicit pad)."""
    import keras

    import qsim
    from qsim.executors import float_exec

    def build(symmetric: bool):
        keras.utils.set_random_seed(11)
        inp = keras.Input((None, None, 3), name="x")
        if symmetric:
            y = keras.layers.ZeroPadding2D(((1, 1), (1, 1)), name="Conv1_pad")(inp)
            y = keras.layers.Conv2D(8, 3, strides=2, padding="valid", name="Conv1")(y)
        else:
            y = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="Conv1")(inp)
        pad = ((1, 1), (1, 1)) if symmetric else ((0, 1), (0, 1))
        y = keras.layers.ZeroPadding2D(pad, name="block_1_pad")(y)
        y = keras.layers.DepthwiseConv2D(3, strides=2, padding="valid", name="block_1_depthwise")(y)
        return keras.Model(inp, y)

    tf_model, full_model = build(False), build(True)
    tf_model.save(tmp_path / "tf.keras")
    graph = qsim.load_model(tmp_path / "tf.keras", symmetric_pads=True)
    assert graph["Conv1"].attrs["pads"] == (1, 1, 1, 1) == graph["block_1_depthwise"].attrs["pads"]
    for size in [(32, 32), (24, 40)]:
        x = np.random.default_rng(12).uniform(-1, 1, (1, *size, 3)).astype(np.float32)
        want = full_model(x).numpy()
        got = float_exec.run(graph, x).outputs["block_1_depthwise"]
        assert np.max(np.abs(got - want)) <= REL_TOL * np.max(np.abs(want))
        assert not np.allclose(tf_model(x).numpy(), want)  # the rewrite really changes the network
