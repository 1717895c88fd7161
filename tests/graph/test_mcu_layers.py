"""Import, shapes and input checks of the MCU-model layers on hand-written Keras 2 files (no TF)."""
from __future__ import annotations

import numpy as np
import pytest

import qsim
from qsim.errors import InputError, ModelError
from qsim.graph.ir import Graph, Node
from qsim.graph.shapes import infer_shapes

from .keras2_files import _layer, write_legacy_h5


def _model(layers, input_shape, outputs, name="mcu"):
    inp = {"class_name": "InputLayer", "name": "x", "inbound_nodes": [],
           "config": {"batch_input_shape": [None, *input_shape], "dtype": "float32", "name": "x"}}
    return {"class_name": "Functional", "config": {"name": name, "layers": [inp, *layers],
            "input_layers": [["x", 0, 0]], "output_layers": [[outputs, 0, 0]]},
            "keras_version": "2.13.1", "backend": "tensorflow"}


def _dense(name, src, units, activation="linear"):
    return _layer("Dense", name, [(src, 0)], units=units, activation=activation, use_bias=True)


def _dense_weights(rng, name, cin, cout):
    return {f"{name}/kernel:0": rng.normal(0, 0.5, (cin, cout)).astype(np.float32),
            f"{name}/bias:0": rng.normal(0, 0.1, cout).astype(np.float32)}


@pytest.fixture
def features_file(tmp_path):
    """Input (8,) -> Dense 6 -> BN(axis [1]) -> hard_sigmoid -> Dense 3 softmax (Keras 2 file)."""
    rng = np.random.default_rng(0)
    layers = [_dense("fc1", "x", 6),
              _layer("BatchNormalization", "bn", [("fc1", 0)], axis=[1], epsilon=1e-3, center=True, scale=True),
              _layer("Activation", "hs", [("bn", 0)], activation="hard_sigmoid"),
              _dense("probs", "hs", 3, "softmax")]
    weights = {"fc1": _dense_weights(rng, "fc1", 8, 6), "probs": _dense_weights(rng, "probs", 6, 3),
               "bn": {"bn/gamma:0": rng.uniform(0.5, 1.5, 6).astype(np.float32),
                      "bn/beta:0": rng.normal(0, 0.3, 6).astype(np.float32),
                      "bn/moving_mean:0": rng.normal(0, 0.3, 6).astype(np.float32),
                      "bn/moving_variance:0": rng.uniform(0.3, 2, 6).astype(np.float32)}}
    path = tmp_path / "features.h5"
    write_legacy_h5(path, _model(layers, [8], "probs"), weights)
    return path, weights


def _reference(x, w):
    """The model by hand in float64 (Keras 2 hard_sigmoid: clip(0.2 x + 0.5, 0, 1))."""
    h = x @ w["fc1"]["fc1/kernel:0"] + w["fc1"]["fc1/bias:0"]
    bn = w["bn"]
    h = (h - bn["bn/moving_mean:0"]) / np.sqrt(bn["bn/moving_variance:0"] + 1e-3) * bn["bn/gamma:0"] + bn["bn/beta:0"]
    h = np.clip(0.2 * h + 0.5, 0, 1)
    z = h @ w["probs"]["probs/kernel:0"] + w["probs"]["probs/bias:0"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_feature_model_imports_folds_and_runs(features_file):
    path, weights = features_file
    graph = qsim.load_model(path)
    assert [(n.name, n.op) for n in graph] == [("x", "input"), ("bn", "dense"), ("hs", "hard_sigmoid"),
                                               ("probs_linear", "dense"), ("probs", "softmax")]
    assert graph["bn"].attrs["fused"] == ["fc1", "bn"] and graph["hs"].attrs == {"slope": 0.2, "offset": 0.5}
    assert infer_shapes(graph) == {"x": (8,), "bn": (6,), "hs": (6,), "probs_linear": (3,), "probs": (3,)}
    x = np.random.default_rng(1).normal(size=(4, 8)).astype(np.float32)
    got = qsim.run(graph, x).outputs["probs"]
    np.testing.assert_allclose(got, _reference(x.astype(np.float64), weights), atol=1e-6)
    one = qsim.run(graph, x[0]).outputs["probs"]  # one sample without the batch axis
    assert one.shape == (1, 3) and np.array_equal(one[0], got[0])
    unfolded = qsim.load_model(path, fold_bn=False)
    np.testing.assert_allclose(qsim.run(unfolded, x).outputs["probs"], got, atol=1e-6)
    half = qsim.run(unfolded, x, executor="fp16").outputs["probs"]  # unfolded 1-D BN in fp16
    assert np.max(np.abs(half - got)) < 1e-2


def test_batch_size_does_not_change_a_bit(features_file):
    graph = qsim.load_model(features_file[0])
    x = np.random.default_rng(2).normal(size=(7, 8)).astype(np.float32)
    batch = qsim.run(graph, x).outputs["probs"]
    for i in range(7):
        assert np.array_equal(qsim.run(graph, x[i:i + 1]).outputs["probs"], batch[i:i + 1])


@pytest.mark.parametrize("shape, match", [
    ((4, 7), r"input 'x': got shape \(4, 7\), expected \(N, 8\) or \(8,\)"),
    ((2, 3, 8), r"got shape \(2, 3, 8\), expected \(N, 8\) or \(8,\) \(batch first\)"),
    ((0, 8), "empty input"),
])
def test_feature_input_checks(features_file, shape, match):
    graph = qsim.load_model(features_file[0])
    with pytest.raises(InputError, match=match):
        qsim.run(graph, np.zeros(shape, np.float32))


def test_input_hw_on_a_feature_model_is_an_error(features_file):
    with pytest.raises(ModelError, match=r"has shape \(8,\), not an image"):
        qsim.load_model(features_file[0], input_hw=(8, 8))


def _one_layer_file(tmp_path, layer, input_shape, weights=None):
    path = tmp_path / "one.h5"
    write_legacy_h5(path, _model([layer], input_shape, layer["name"]), weights or {})
    return path


@pytest.mark.parametrize("layer, input_shape, match", [
    (_layer("Reshape", "r", [("x", 0)], target_shape=[0, 4]), [8], r"'r' \(Reshape\): bad target_shape"),
    (_layer("Reshape", "r", [("x", 0)], target_shape=[3, 3]), [8], r"cannot reshape \(8,\) \(8 values\)"),
    (_layer("AveragePooling2D", "p", [("x", 0)], pool_size=[2, 2], padding="causal"), [4, 4, 1], "padding='causal'"),
    (_layer("MaxPooling2D", "p", [("x", 0)], pool_size=[2, 2], data_format="channels_first"), [4, 4, 1],
     "channels_last"),
    (_layer("MaxPooling2D", "p", [("x", 0)], pool_size=[2, 2]), [8], r"needs an image tensor \(N, H, W, C\)"),
    (_layer("MaxPooling2D", "p", [("x", 0)], pool_size=[5, 5]), [4, 4, 1], "smaller than its 5x5 window"),
    (_layer("GlobalAveragePooling2D", "g", [("x", 0)], keepdims="yes"), [4, 4, 1], "bad keepdims"),
    (_layer("Softmax", "s", [("x", 0)], axis=0), [8], "one non-batch axis"),
    (_layer("Softmax", "s", [("x", 0)], axis=-3), [8], "softmax axis -3 outside"),
    (_layer("Normalization", "n", [("x", 0)], axis=[1], mean=[0.0], variance=[1.0]), [4, 4, 1],
     r"axis=1 of a rank-4 tensor"),
    (_layer("Normalization", "n", [("x", 0)], axis=-1, mean=[0.0, 1.0], variance=[1.0]), [2],
     "mean has 2 values, variance 1"),
    (_layer("Rescaling", "s", [("x", 0)], scale="big", offset=0.0), [2], "bad scale 'big'"),
    (_layer("Activation", "a", [("x", 0)], activation="gelu"), [2], "activation 'gelu' not supported"),
    (_layer("Activation", "a", [("x", 0)], activation=[0, 2]), [2], r"activation \[0, 2\] not supported"),
    (_layer("ReLU", "r", [("x", 0)], max_value="x"), [2], "bad max_value 'x'"),
    (_layer("Rescaling", "s", [("x", 0)], scale=[[1.0, 2.0], [3.0, 4.0]], offset=0.0), [2], "one per channel"),
    (_layer("Multiply", "m", [("x", 0)]), [2], "needs at least 2 inputs"),
    (_layer("LSTM", "l", [("x", 0)], units=4), [3, 2], "unsupported type 'LSTM'; supported: .*Dense"),
])
def test_bad_layers_name_the_layer(tmp_path, layer, input_shape, match):
    with pytest.raises(ModelError, match=match) as info:
        qsim.load_model(_one_layer_file(tmp_path, layer, input_shape))
    assert "one.h5" in str(info.value)


def test_batch_norm_on_another_axis_is_refused(tmp_path):
    w = {"b": {f"b/{k}:0": np.ones(4, np.float32) for k in ("gamma", "beta", "moving_mean", "moving_variance")}}
    layer = _layer("BatchNormalization", "b", [("x", 0)], axis=[1], epsilon=1e-3, center=True, scale=True)
    with pytest.raises(ModelError, match=r"'b' \(BatchNormalization\): axis=1 of a rank-4 tensor"):
        qsim.load_model(_one_layer_file(tmp_path, layer, [4, 4, 2], w))


def test_dense_kernel_must_match_units(tmp_path):
    w = {"d": _dense_weights(np.random.default_rng(0), "d", 4, 3)}
    with pytest.raises(ModelError, match=r"stored kernel has shape \(4, 3\), the config \(units 5\)"):
        qsim.load_model(_one_layer_file(tmp_path, _dense("d", "x", 5), [4], w))
    with pytest.raises(ModelError, match="Dense kernel expects 4 input channels, input has 6"):
        qsim.load_model(_one_layer_file(tmp_path, _dense("d", "x", 3), [6], w))


def test_rescaling_and_normalization_broadcast_to_channels(tmp_path):
    path = _one_layer_file(tmp_path, _layer("Rescaling", "s", [("x", 0)], scale=0.5, offset=-1.0), [2, 2, 3])
    node = qsim.load_model(path)["s"]
    assert node.op == "rescale" and node.weights["scale"].tolist() == [0.5] * 3
    assert node.weights["offset"].tolist() == [-1.0] * 3
    norm = _layer("Normalization", "n", [("x", 0)], axis=-1, mean=[1.0, 2.0], variance=[4.0, 0.0])
    node = qsim.load_model(_one_layer_file(tmp_path, norm, [2]))["n"]
    # (x - mean) / max(sqrt(var), 1e-7): a zero variance divides by 1e-7, as Keras does
    np.testing.assert_allclose(node.weights["scale"], [0.5, 1e7])
    np.testing.assert_allclose(node.weights["offset"], [-0.5, -2e7])


def _keras3_op(cls, name, args):
    """A Keras 3 op call (``x + 3.0``) as a legacy .h5 written by Keras 3 stores it (no module)."""
    return {"class_name": cls, "config": {"name": name}, "name": name,
            "inbound_nodes": [{"args": args, "kwargs": {}}]}


def _tensor(name, shape):
    return {"class_name": "__keras_tensor__", "config": {"shape": shape, "keras_history": [name, 0, 0]}}


def test_keras3_ops_with_constants_become_rescales(tmp_path):
    t = _tensor("x", [None, 4])
    layers = [_keras3_op("Add", "plus", [t, 3.0]), _keras3_op("Multiply", "times", [_tensor("plus", [None, 4]), 0.25]),
              _keras3_op("Subtract", "minus", [_tensor("times", [None, 4]), 1.0]),
              _keras3_op("Divide", "div", [_tensor("minus", [None, 4]), 2.0]),
              _keras3_op("Multiply", "sq", [_tensor("div", [None, 4]), _tensor("div", [None, 4])])]
    config = _model(layers, [4], "sq")
    config["keras_version"] = "3.15.1"
    for spec in config["config"]["layers"][1:]:
        spec["module"] = "keras.src.ops.numpy"
    path = tmp_path / "ops.h5"
    write_legacy_h5(path, config, {})
    graph = qsim.load_model(path)
    assert [n.op for n in graph][1:] == ["rescale"] * 4 + ["multiply"]
    x = np.array([[0.0, 1.0, -3.0, 5.0]], np.float32)
    want = (((x + 3.0) * 0.25 - 1.0) / 2.0) ** 2
    np.testing.assert_allclose(qsim.run(graph, x).outputs["sq"], want, rtol=1e-6)
    bad = _model([_keras3_op("Add", "plus", [t, 3.0, 4.0])], [4], "plus")
    write_legacy_h5(path, bad, {})
    with pytest.raises(ModelError, match=r"'plus' \(ops.Add\): 1 tensor\(s\) and 2 constant\(s\)"):
        qsim.load_model(path)


def test_shape_rules_of_the_new_ops():
    z = np.zeros
    g = Graph([Node("x", "input", attrs={"shape": (7, 5, 3)}),
               Node("a", "avg_pool", ["x"], {"pool_size": (3, 3), "strides": (2, 2), "pads": "same"}),
               Node("m", "max_pool", ["x"], {"pool_size": (2, 2), "strides": (2, 2), "pads": (0, 0, 0, 0)}),
               Node("g", "global_avg_pool", ["a"], {"keepdims": True}),
               Node("s", "multiply", ["a", "g"]),
               Node("v", "global_max_pool", ["s"], {"keepdims": False}),
               Node("d", "dense", ["v"], weights={"kernel": z((3, 6), np.float32)}),
               Node("r", "reshape", ["d"], {"shape": (-1, 2)}),
               Node("sm", "softmax", ["r"], {"axis": -2}),
               Node("f", "reshape", ["m"], {"shape": (-1,)})], ["sm", "f"])
    shapes = infer_shapes(g)
    assert shapes["a"] == (4, 3, 3) and shapes["m"] == (3, 2, 3) and shapes["g"] == (1, 1, 3)
    assert shapes["s"] == (4, 3, 3) and shapes["v"] == (3,) and shapes["d"] == (6,)
    assert shapes["r"] == (3, 2) and shapes["sm"] == (3, 2) and shapes["f"] == (18,)
    free = Graph([Node("x", "input", attrs={"shape": (None, None, 3)}),
                  Node("f", "reshape", ["x"], {"shape": (-1,)})], ["f"])
    assert infer_shapes(free)["f"] == (None,) and infer_shapes(free, (2, 4))["f"] == (24,)
    bad = Graph([Node("x", "input", attrs={"shape": (4, 4, 3)}),
                 Node("p", "global_avg_pool", ["x"], {"keepdims": True}),
                 Node("q", "max_pool", ["x"], {"pool_size": (2, 2), "strides": (2, 2), "pads": (0, 0, 0, 0)}),
                 Node("s", "multiply", ["q", "x"])], ["s"])
    with pytest.raises(ModelError, match=r"node 's': multiply of shapes \(2, 2, 3\) and \(4, 4, 3\)"):
        infer_shapes(bad)


def test_k210_refuses_what_it_cannot_lower_in_one_line(features_file, tmp_path, capsys):
    from qsim.cli import main
    from qsim.k210.lowering import lower

    assert main(["k210", str(features_file[0])]) == 1
    assert "not an image (H, W, C): the K210 path takes image models" in capsys.readouterr().err
    # every importable op now lowers (KPU or CPU step); an op only a lowering creates does not
    g = Graph([Node("x", "input", attrs={"shape": (8, 8, 3)}), Node("p", "kpu_add", ["x"])], ["p"])
    with pytest.raises(ModelError, match=r"node 'p' \(kpu_add\): the K210 backend does not lower kpu_add yet; "
                                         r"it runs input, .*softmax, .*avg_pool, .*multiply"):
        lower(g, (8, 8))
