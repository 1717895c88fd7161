"""Float and fp16 on the architectures of real MCU models, against TensorFlow layer by layer.

Models (`reference.mcu_models`, random weights, randomised BatchNorm and Normalization
statistics): the four MLPerf Tiny reference architectures (vww_96, ResNet-8, ad01,
str_ww), Keras Applications MobileNet (alpha 0.25), MobileNetV3Small and EfficientNetB0
at 32x32, and a layer zoo with every other supported layer kind. Each is saved as legacy
``.h5`` and Keras 3 ``.keras`` and loaded by qsim (h5py only).

* float32: max |err| <= 1e-4 * max |activation| at every node named after a Keras layer
  (a folded conv carries its BatchNorm's name; ``<name>_linear`` nodes split off a fused
  activation, a SeparableConv2D's ``<name>_depthwise`` and Keras 3 ops such as ``x + 3.0``
  have no TF twin), and every supported op kind occurs in some model.
* fp16 (half parameters and activations): every node within 1e-2 * max |float activation|
  of the float run (measured worst: see `FP16_REL_TOL`).
"""
from __future__ import annotations

import numpy as np
import pytest

from reference.mcu_models import MODELS

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

REL_TOL = 1e-4
FP16_REL_TOL = 1e-2  # measured worst 2.3e-3 (MobileNetV3Small): python -m reference.mcu_models


@pytest.fixture(scope="module", params=MODELS)
def exported(request, tf, tmp_path_factory):
    """({"h5": path, "keras": path}, x, TF trace) for one model."""
    from reference import mcu_models
    from reference.tf_trace import trace_model

    name = request.param
    model = mcu_models.build(name)
    folder = tmp_path_factory.mktemp(name)
    files = {ext: folder / f"{name}.{ext}" for ext in ("h5", "keras")}
    for path in files.values():
        model.save(path)
    x = mcu_models.sample_input(model, name)
    return files, x, trace_model(model, x)


OPS_SEEN: set[str] = set()


@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_float_matches_tf_every_layer(exported, fmt):
    import qsim
    from qsim.executors import float_exec

    files, x, reference = exported
    graph = qsim.load_model(files[fmt])
    trace = float_exec.run(graph, x)
    compared = 0
    for node in graph:
        if node.name not in reference:
            # no TF layer of its own: a split-off activation's MAC, a separable conv's depthwise
            # half, a Keras 3 op on tensors (x + 3.0: not a layer, not in the trace)
            assert node.name.endswith(("_linear", "_depthwise")) or node.source_class.startswith("ops."), node.name
            continue
        got, want = trace.values[node.name], reference[node.name]
        assert got.shape == want.shape, (node.name, got.shape, want.shape)
        scale = float(np.max(np.abs(want))) or 1.0
        err = float(np.max(np.abs(got.astype(np.float64) - want)))
        assert err <= REL_TOL * scale, f"{files[fmt].name}: {node.name} ({node.op}): max|err| {err:.3g} > " \
                                       f"{REL_TOL}*{scale:.3g}"
        compared += 1
    assert compared >= len(graph) // 2
    OPS_SEEN.update(node.op for node in graph)


def test_fp16_close_to_float_every_layer(exported):
    import qsim
    from qsim.executors import float_exec, fp16_exec

    files, x, _ = exported
    graph = qsim.load_model(files["h5"])
    full = float_exec.run(graph, x).values
    half = fp16_exec.run(graph, x)
    assert half.executor == "fp16"
    for name, value in half.values.items():
        scale = float(np.max(np.abs(full[name]))) or 1.0
        err = float(np.max(np.abs(value.astype(np.float64) - full[name])))
        assert err <= FP16_REL_TOL * scale, f"{files['h5'].name}: {name}: fp16 max|err| {err:.3g} > " \
                                            f"{FP16_REL_TOL}*{scale:.3g}"
        assert np.array_equal(value, value.astype(np.float16).astype(np.float32)), name  # half values


def test_weights_only_with_a_wide_format_converges_to_float(exported):
    """Weights-only (the paper's Table II protocol) with Q15.16 parameters: within 1e-3 of float."""
    import qsim
    from qsim.plan import Plan

    files, x, _ = exported
    graph = qsim.load_model(files["h5"], fold_bn=False)  # unfolded BatchNorms too (1-D in the zoo)
    full = qsim.run(graph, x).values
    trace = qsim.run(graph, x, plan=Plan.uniform("Q15.16", mode="weights"))
    assert trace.executor == "weights"
    for name, value in trace.values.items():
        scale = float(np.max(np.abs(full[name]))) or 1.0
        assert float(np.max(np.abs(value - full[name]))) <= 1e-3 * scale, name


def test_every_new_op_is_covered():
    """The models above (run first, same module) exercised every op an importer creates."""
    from qsim.graph.ops import LOWERED_OPS, Op

    if not OPS_SEEN:
        pytest.skip("run with the float tests of this module")
    importable = {op.value for op in Op} - {op.value for op in LOWERED_OPS} - {"identity", "upsample"}
    missing = importable - OPS_SEEN
    assert not missing, missing


def test_full_integer_with_a_wide_format_converges_to_float(exported):
    """Every activation, weight and bias an integer (Q8.23 words, 64-bit accumulators):
    each layer within 1e-4 of float's max |activation|, and no overflow counted. Covers the
    integer kernels of every op the MLPerf Tiny and Keras Applications models hold."""
    import qsim
    from qsim.plan import Plan

    files, x, _ = exported
    graph = qsim.load_model(files["h5"])
    full = qsim.run(graph, x).values
    plan = Plan.uniform("Q8.23", acc_bits=64, rounding="half_even", overflow="saturate")
    trace = qsim.run(graph, x, plan=plan)
    assert trace.executor == "fixed"
    events = {n: {s: c.events for s, c in sites.items() if c.events} for n, sites in trace.counters.items()}
    assert not any(events.values()), {n: e for n, e in events.items() if e}
    for name, value in trace.values.items():
        scale = float(np.max(np.abs(full[name]))) or 1.0
        err = float(np.max(np.abs(value - full[name])))
        assert err <= 1e-4 * scale, f"{files['h5'].name}: {name}: max|err| {err:.3g} > 1e-4*{scale:.3g}"
