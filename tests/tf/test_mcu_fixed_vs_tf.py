"""The fixed-point backend on MCU-shaped models against TensorFlow float, layer by layer (issue 10).

Models built here (random weights, randomised BatchNorm statistics, saved as ``.h5``): the
ResNet-8 of `reference.mcu_models` (residual stacks, AveragePooling2D(8), Flatten, Dense,
softmax), a DS-CNN keyword spotter
(10x4/s2 conv, depthwise-separable blocks, AveragePooling2D over the map, Dense), the ad01
Dense autoencoder (`reference.mcu_models.ad01`) and an SE model (Rescaling, "same" max and
average pools with edge windows, a squeeze-and-excitation block with
GlobalAveragePooling2D(keepdims) + Dense + Multiply, GlobalMaxPooling2D, Reshape, Dense on
a rank-3 tensor).

* wide formats (Q8.23 everywhere, 64-bit accumulators): every layer with a TF twin is within
  `WIDE_REL_TOL` of its max |activation| and no site overflows;
* narrow formats (Q0.7 / Q2.5, 16-bit accumulators, pools and products into Q0.7):
  overflow is counted at the MACs and at every ``pool`` / ``mul`` site, and the output moves
  far from the wide run's.
"""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

WIDE_REL_TOL = 1e-5  # measured worst: resnet8 1.0e-06, ds_cnn 5.3e-07, ad01 9.4e-07, se_pools 5.9e-07
WIDE = dict(fmt="Q8.23", acc_bits=64, rounding="half_even")


def _keras():
    import keras

    return keras, keras.layers


def resnet8(seed=0):
    from reference.mcu_models import resnet8 as build  # MLPerf Tiny's ResNet-8, softmax head included

    return build(seed)


def ds_cnn(seed=0):
    keras, L = _keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((49, 10, 1), name="input")
    x = L.Conv2D(64, (10, 4), strides=(2, 2), padding="same")(inp)
    x = L.Activation("relu")(L.BatchNormalization()(x))
    for _ in range(4):
        x = L.Activation("relu")(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same")(x)))
        x = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(64, 1)(x)))
    x = L.AveragePooling2D(pool_size=tuple(x.shape[1:3]))(x)
    return keras.Model(inp, L.Dense(12)(L.Flatten()(x)), name="ds_cnn")


def ad01(seed=0):
    from reference.mcu_models import ad01 as build

    return build(seed=seed)


def se_pools(seed=0):
    keras, L = _keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((15, 13, 3), name="input")  # odd sizes: "same" windows at the edges
    x = L.Rescaling(2.0, offset=-0.5, name="rescale")(inp)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="max_same")(x)
    a = L.AveragePooling2D(3, strides=2, padding="same", name="avg_same")(x)
    s = L.GlobalAveragePooling2D(keepdims=True, name="squeeze")(a)
    s = L.Dense(4, activation="relu", name="se_fc1")(s)
    s = L.Dense(8, name="se_fc2")(s)
    m = L.Multiply(name="excite")([a, s])
    b = L.AveragePooling2D(2, strides=1, name="avg_valid")(m)
    g = L.GlobalMaxPooling2D(name="gmax")(b)
    v = L.Reshape((2, 4), name="to_seq")(g)
    v = L.Dense(3, name="fc_seq")(v)
    out = L.Dense(5, name="head")(L.Flatten(name="flat")(v))
    return keras.Model(inp, out, name="se_pools")


BUILDERS = {"resnet8": resnet8, "ds_cnn": ds_cnn, "ad01": ad01, "se_pools": se_pools}


@pytest.fixture(scope="module", params=BUILDERS)
def model_case(request, tf, tmp_path_factory):
    """(qsim graph, x, TF trace) of one model."""
    import qsim
    from reference.mcu_models import randomise_statistics
    from reference.tf_trace import trace_model

    model = BUILDERS[request.param](seed=1)
    randomise_statistics(model, seed=2)
    path = tmp_path_factory.mktemp(request.param) / f"{request.param}.h5"
    model.save(path)
    x = np.random.default_rng(3).uniform(-1, 1, (2, *model.input_shape[1:])).astype(np.float32)
    return qsim.load_model(path), x, trace_model(model, x)


def _errors(graph, trace, reference):
    """{node: max|err| / max|TF activation|} over the nodes with a TF twin."""
    out = {}
    for node in graph:
        if node.name in reference:
            want = reference[node.name]
            got = trace.values[node.name]
            assert got.shape == want.shape, (node.name, got.shape, want.shape)
            out[node.name] = float(np.max(np.abs(got.astype(np.float64) - want))) / (float(np.max(np.abs(want))) or 1.0)
    return out


def test_wide_formats_converge_to_tf_every_layer(model_case):
    from qsim.executors import fixed_exec
    from qsim.plan import Plan

    graph, x, reference = model_case
    trace = fixed_exec.run(graph, x, Plan.uniform(WIDE["fmt"], acc_bits=WIDE["acc_bits"], rounding=WIDE["rounding"]))
    errors = _errors(graph, trace, reference)
    assert len(errors) >= len(graph) // 2
    worst = max(errors, key=errors.get)
    assert errors[worst] <= WIDE_REL_TOL, f"{graph.name}: {worst} relative error {errors[worst]:.3g}"
    overflowed = {(n, s): c.events for n, cs in trace.counters.items() for s, c in cs.items() if c.events}
    assert not overflowed, overflowed


def test_narrow_formats_count_overflows(model_case):
    """Q0.7 with 16-bit accumulators overflows at the MACs; Q2.5 with the pools' and products'
    outputs in Q0.7 (narrower than what they read) at every pool / mul site."""
    from qsim.executors import fixed_exec
    from qsim.graph.ops import MAC_OPS, Op
    from qsim.plan import Plan

    graph, x, reference = model_case
    sites = {Op.AVG_POOL: "pool", Op.GLOBAL_AVG_POOL: "pool", Op.MULTIPLY: "mul"}
    narrowed: dict = {}  # a pool or product reading a Q2.5 tensor writes Q0.7
    for n in graph:
        if n.op in sites and not narrowed.keys() & set(n.inputs):
            narrowed[n.name] = {"act": "Q0.7"}
    assert narrowed or graph.name == "ad01"
    trace = fixed_exec.run(graph, x * 4, Plan.uniform("Q2.5", acc_bits=16).with_nodes(narrowed))
    q07 = fixed_exec.run(graph, x, Plan.uniform("Q0.7", acc_bits=16))
    mac_events = sum(q07.counters[n.name][s].events for n in graph if n.op in MAC_OPS
                     for s in ("acc", "requant"))
    assert mac_events > 0
    for node in graph:
        if node.name in narrowed:
            counter = trace.counters[node.name][sites[node.op]]
            assert counter.events > 0 and counter.elements == trace.codes[node.name].size, node.name
    wide = fixed_exec.run(graph, x * 4, Plan.uniform(WIDE["fmt"], acc_bits=WIDE["acc_bits"]))
    out = graph.outputs[0]
    assert np.max(np.abs(trace.values[out] - wide.values[out])) > 1e-3 * (np.max(np.abs(wide.values[out])) or 1.0)
