"""The fixed backend with wide formats converges to TensorFlow float on models whose
activations are tanh, hard_sigmoid, hard_swish, swish, softmax and LeakyReLU.

Models built here (Keras 3, random weights, randomised BatchNorm statistics, saved as
``.keras`` and loaded by qsim): a MobileNetV3Small-like net (hard_swish; squeeze-and-excitation
gated by hard_sigmoid), an EfficientNet-like net (swish; SE gated by sigmoid), and a small
classifier (LeakyReLU, tanh, softmax). Every node named after a Keras layer is within
``REL_TOL * max |activation|`` of TF under ``Q10.21`` activations, ``Q7.24`` weights and a
64-bit accumulator (each step rounds at 2**-21; TF's own float32 error is ~1e-6).

The squeeze-and-excitation variants need the integer global average pool and multiply
(another branch of the integer-kernel work); until those kernels are in `OP_KERNELS` they are
expected to fail with the backend's "has no fixed kernel" error (strict: once the kernels
land they must pass).
"""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

REL_TOL = 2e-5  # measured worst 1.3e-6 .. 2e-6 (SE variants after the merge: 6.6e-6)
PLAN = dict(fmt="Q10.21", weights="Q7.24", acc_bits=64, rounding="half_even")


def _conv_bn(keras, x, filters, kernel, name, strides=1, depthwise=False):
    L = keras.layers
    if depthwise:
        x = L.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False, name=name)(x)
    else:
        x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name)(x)
    return L.BatchNormalization(name=f"{name}_bn")(x)


def _se(keras, x, channels, gate, name):
    L = keras.layers
    s = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = L.Conv2D(max(2, channels // 4), 1, name=f"{name}_reduce")(s)
    s = L.ReLU(name=f"{name}_relu")(s)
    s = L.Conv2D(channels, 1, name=f"{name}_expand")(s)
    s = L.Activation(gate, name=f"{name}_gate")(s)
    return L.Multiply(name=f"{name}_mul")([x, s])


def mobilenet_v3_like(keras, se: bool):
    L = keras.layers
    inp = keras.Input((16, 16, 3), name="image")
    x = L.Activation("hard_swish", name="stem_hs")(_conv_bn(keras, inp, 8, 3, "stem", strides=2))
    y = L.Activation("hard_swish", name="b1_dw_hs")(_conv_bn(keras, x, 8, 3, "b1_dw", depthwise=True))
    if se:
        y = _se(keras, y, 8, "hard_sigmoid", "b1_se")
    y = _conv_bn(keras, y, 8, 1, "b1_project")
    x = L.Add(name="b1_add")([x, y])
    x = L.Activation("hard_swish", name="head_hs")(_conv_bn(keras, x, 16, 1, "head"))
    x = L.Activation("hard_sigmoid", name="head_hsig")(x)
    logits = L.Conv2D(10, 8, padding="valid", name="logits")(x)
    return keras.Model(inp, L.Softmax(name="probs")(logits), name="mnv3_like")


def efficientnet_like(keras, se: bool):
    L = keras.layers
    inp = keras.Input((16, 16, 3), name="image")
    x = L.Activation("swish", name="stem_sw")(_conv_bn(keras, inp, 8, 3, "stem", strides=2))
    y = L.Activation("swish", name="b1_expand_sw")(_conv_bn(keras, x, 16, 1, "b1_expand"))
    y = L.Activation("swish", name="b1_dw_sw")(_conv_bn(keras, y, 16, 3, "b1_dw", depthwise=True))
    if se:
        y = _se(keras, y, 16, "sigmoid", "b1_se")
    y = _conv_bn(keras, y, 8, 1, "b1_project")
    x = L.Add(name="b1_add")([x, y])
    x = L.Activation("swish", name="head_sw")(_conv_bn(keras, x, 16, 1, "head"))
    logits = L.Conv2D(10, 8, padding="valid", name="logits")(x)
    return keras.Model(inp, L.Activation("softmax", name="probs")(logits), name="effnet_like")


def classifier(keras, se: bool = False):
    L = keras.layers
    inp = keras.Input((12, 12, 3), name="image")
    x = L.LeakyReLU(0.2, name="c1_leaky")(L.Conv2D(8, 3, strides=2, padding="same", name="c1")(inp))
    x = L.Activation("tanh", name="c2_tanh")(L.Conv2D(8, 3, padding="same", name="c2")(x))
    logits = L.Conv2D(5, 6, padding="valid", name="logits")(x)
    return keras.Model(inp, L.Softmax(name="probs")(logits), name="classifier")


MODELS = {"mobilenet_v3_like": mobilenet_v3_like, "efficientnet_like": efficientnet_like, "classifier": classifier}
CASES = [pytest.param(name, False, id=name) for name in MODELS] + [
    pytest.param(name, True, id=f"{name}-se") for name in ("mobilenet_v3_like", "efficientnet_like")]


@pytest.mark.parametrize("name,se", CASES)
def test_fixed_wide_formats_converge_to_tf(tf, tmp_path, name, se):
    import keras

    import qsim
    from qsim.executors import fixed_exec
    from qsim.plan import Plan
    from reference.mcu_models import randomise_statistics
    from reference.tf_trace import trace_model

    keras.utils.set_random_seed(11)
    model = MODELS[name](keras, se)
    randomise_statistics(model, seed=2)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    shape = model.input_shape[1:]
    x = np.random.default_rng(4).uniform(-1, 1, (2, *shape)).astype(np.float32)
    reference = trace_model(model, x)

    graph = qsim.load_model(path)
    ops = {node.op for node in graph}
    fmt = PLAN["fmt"]
    trace = fixed_exec.run(graph, x, Plan.uniform(fmt, **{k: v for k, v in PLAN.items() if k != "fmt"}))
    compared = 0
    for node in graph:
        if node.name not in reference:
            continue
        want = reference[node.name].astype(np.float64)
        scale = float(np.max(np.abs(want))) or 1.0
        err = float(np.max(np.abs(trace.values[node.name] - want)))
        assert err <= REL_TOL * scale, f"{name}: {node.name} ({node.op}): max|err| {err:.3g} > {REL_TOL}*{scale:.3g}"
        compared += 1
    assert compared >= len(graph) // 2
    probs = trace.outputs["probs"]
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=10 * 2.0**-21)
    assert np.array_equal(np.argmax(probs, -1), np.argmax(reference["probs"], -1))
    want_ops = {"mobilenet_v3_like": {"hard_swish", "hard_sigmoid", "softmax"},
                "efficientnet_like": {"swish", "softmax"} | ({"sigmoid"} if se else set()),
                "classifier": {"relu", "tanh", "softmax"}}[name]
    assert want_ops <= ops, ops
