"""The fixed-point executor.

* narrow formats: every node's codes and overflow counts equal a chain of the slow Python-int
  reference kernels (independent of the fast kernels), on a graph with every op;
* wide formats: converges to the float executor (~1e-6 relative), on a small graph and on
  the paper's A98 (ImageNet MobileNetV2 weights, TF fixture);
* batch and thread independence, counters, weights-only mode, parameter cache, errors.
"""
from __future__ import annotations

import numba
import numpy as np
import pytest

import qsim.runtime
from qsim.errors import InputError, ModelError, PlanError
from qsim.executors import fixed_exec, float_exec, run
from qsim.fixed import QFormat
from qsim.fixed.cast import quantize
from qsim.graph.ir import Graph, Node, resolve_pads
from qsim.graph.passes.quantize_weights import mac_params
from qsim.kernels.ref.conv import conv2d_ref
from qsim.kernels.ref.eltwise import add_ref, concat_ref, pad_ref, relu_ref
from qsim.kernels.ref.sigmoid import sigmoid_ref
from qsim.kernels.ref.upsample import upsample_bilinear_ref
from qsim.plan import Plan


def every_op_graph(seed: int = 0, scale: float = 0.3, bn: bool = True) -> Graph:
    """A tiny MobileNetV2-like graph with every op the fixed executor runs."""
    rng = np.random.default_rng(seed)

    def w(*shape, s=scale):
        return (rng.standard_normal(shape) * s).astype(np.float32)

    nodes = [
        Node("in", "input", attrs={"shape": (None, None, 3)}),
        Node("pad", "pad", ["in"], {"pads": (0, 1, 0, 1)}),
        Node("c1", "conv2d", ["pad"], {"strides": (2, 2), "pads": (0, 0, 0, 0)}, {"kernel": w(3, 3, 3, 6), "bias": w(6)}),
        Node("r1", "relu", ["c1"], {"max_value": 6.0}),
        Node("dw", "depthwise_conv2d", ["r1"], {"strides": (1, 1), "pads": "same"}, {"kernel": w(3, 3, 6, 1), "bias": w(6)}),
        Node("r2", "relu", ["dw"], {"max_value": 6.0}),
        Node("pw", "conv2d", ["r2"], {}, {"kernel": w(1, 1, 6, 6)}),
        Node("add", "add", ["pw", "c1"]),
    ]
    last = "add"
    if bn:
        nodes.append(Node("bn", "batch_norm", ["add"], {"epsilon": 1e-3}, {
            "gamma": rng.uniform(0.5, 1.5, 6).astype(np.float32), "beta": w(6),
            "mean": w(6), "variance": rng.uniform(0.5, 2, 6).astype(np.float32)}))
        last = "bn"
    nodes += [
        Node("c2", "conv2d", [last], {"strides": (2, 2), "pads": "same"}, {"kernel": w(3, 3, 6, 4), "bias": w(4)}),
        Node("r3", "relu", ["c2"], {}),
        Node("up", "upsample", ["r3"], {"size": (2, 2), "interpolation": "bilinear"}),
        Node("cat", "concat", ["up", last], {"axis": -1}),
        Node("head", "conv2d", ["cat"], {}, {"kernel": w(1, 1, 10, 5), "bias": w(5)}),
        Node("sig", "sigmoid", ["head"]),
    ]
    return Graph(nodes, ["sig", "head"])


def reference_chain(graph: Graph, x: np.ndarray, plan: Plan) -> tuple[dict, dict]:
    """Run `graph` with the slow reference kernels only: codes and {node: {site: events}}."""
    codes, fmts, events = {}, {}, {}
    for node in graph:
        np_ = plan.for_node(node.name)
        ins = [codes[i] for i in node.inputs]
        in_f = [fmts[i] for i in node.inputs]
        ev = events[node.name] = {}
        fmt = np_.act
        if node.op == "input":
            out = quantize(x, fmt, rounding=np_.rounding_at("input"), overflow=np_.overflow_at("input"))
        elif node.op in ("conv2d", "depthwise_conv2d", "batch_norm"):
            kernel, bias, depthwise = mac_params(node)
            wq = quantize(kernel, np_.weights, rounding=np_.rounding_at("weights"), overflow=np_.overflow_at("weights"))
            bq = None if bias is None else quantize(bias, np_.bias, rounding=np_.rounding_at("bias"),
                                                    overflow=np_.overflow_at("bias"))
            strides = tuple(node.attrs.get("strides", (1, 1)))
            pads = resolve_pads(node.attrs.get("pads", (0, 0, 0, 0)), ins[0].shape[1:3], wq.shape[:2], strides)
            out, t = conv2d_ref(ins[0], wq, bq, in_fmt=in_f[0], w_fmt=np_.weights, b_fmt=np_.bias, out_fmt=fmt,
                                acc_bits=np_.acc_bits, strides=strides, pads=pads, depthwise=depthwise,
                                rounding=np_.rounding_at("requant"), overflow=np_.overflow_at("requant"),
                                acc_overflow=np_.overflow_at("acc"), acc_saturation=np_.acc_saturation)
            ev.update(acc=t["acc"].events, requant=t["requant"].events)
        elif node.op == "relu":
            out, t = relu_ref(ins[0], in_fmt=in_f[0], out_fmt=fmt, max_value=node.attrs.get("max_value"),
                              rounding=np_.rounding_at("act"), overflow=np_.overflow_at("act"))
            ev["act"] = t.events
        elif node.op == "sigmoid":
            out, t = sigmoid_ref(ins[0], in_fmt=in_f[0], out_fmt=fmt, rounding=np_.rounding_at("act"),
                                 overflow=np_.overflow_at("act"))
            ev["act"] = t.events
        elif node.op == "add":
            out, t = add_ref(ins, in_f, out_fmt=fmt, rounding=np_.rounding_at("add"), overflow=np_.overflow_at("add"))
            ev["add"] = t.events
        elif node.op == "concat":
            out, t = concat_ref(ins, in_f, out_fmt=fmt, rounding=np_.rounding_at("concat"),
                                overflow=np_.overflow_at("concat"))
            ev["concat"] = t.events
        elif node.op == "upsample":
            out, t = upsample_bilinear_ref(ins[0], node.attrs["size"], in_fmt=in_f[0], out_fmt=fmt,
                                           rounding=np_.rounding_at("upsample"), overflow=np_.overflow_at("upsample"))
            ev["upsample"] = t.events
        elif node.op == "pad":
            out, fmt = pad_ref(ins[0], node.attrs["pads"]), in_f[0]
        else:
            raise AssertionError(node.op)
        codes[node.name], fmts[node.name] = out, fmt
    return codes, events


NARROW_PLANS = {
    "q9-half_up-saturate": Plan.uniform("q9", acc_bits=32),
    "q6-floor-wrap": Plan.uniform("q6", acc_bits=32, rounding="floor", overflow="wrap"),
    "Q3.4-half_even-per-step-acc16": Plan.uniform("Q3.4", acc_bits=16, rounding="half_even",
                                                  acc_saturation="per_step", weights="Q1.6"),
    "mixed-per-layer": Plan.per_layer({
        "in": "Q1.6", "c1": {"act": "Q2.5", "weights": "Q1.6", "bias": "Q3.4", "acc_bits": 16},
        "r1": "UQ2.6", "dw": {"act": "Q3.4", "sites": {"acc": {"overflow": "wrap"}}},
        "add": {"act": "Q1.4", "rounding": "toward_zero"}, "up": {"act": "Q4.11", "rounding": "half_away"},
        "cat": "Q2.3", "sig": {"act": "UQ0.4"}}, default="Q4.7", acc_bits=24, rounding="half_even"),
}


@pytest.mark.parametrize("name", NARROW_PLANS)
def test_narrow_formats_equal_the_reference_chain(name):
    plan = NARROW_PLANS[name]
    g = every_op_graph()
    x = np.random.default_rng(1).uniform(-2, 2, (2, 9, 8, 3))
    trace = fixed_exec.run(g, x, plan)
    want, events = reference_chain(g, x, plan)
    for node in g:
        np.testing.assert_array_equal(trace.codes[node.name], want[node.name], err_msg=f"{name}: {node.name}")
        for site, count in events[node.name].items():
            assert trace.counters[node.name][site].events == count, (name, node.name, site)
    total = sum(c.events for cs in trace.counters.values() for c in cs.values())
    if name in ("Q3.4-half_even-per-step-acc16", "mixed-per-layer"):
        assert total > 0, "the narrow plans are meant to overflow somewhere"


def test_wide_formats_converge_to_float():
    g = every_op_graph()
    x = np.random.default_rng(2).uniform(-1, 1, (1, 12, 13, 3))
    plan = Plan.uniform("Q10.21", weights="Q7.24", acc_bits=64, rounding="half_even")
    fixed = fixed_exec.run(g, x, plan)
    ref = float_exec.run(g, x, dtype=np.float64)
    for node in g:
        want = ref.values[node.name]
        err = np.max(np.abs(fixed.values[node.name] - want))
        assert err <= 1e-5 * max(1.0, np.max(np.abs(want))), (node.name, err)
    assert all(c.events == 0 for cs in fixed.counters.values() for c in cs.values())


def test_trace_contents():
    g = every_op_graph()
    x = np.random.default_rng(3).uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    t = run(g, x, "fixed", plan=Plan.uniform("Q6.9"))
    assert t.executor == "fixed" and list(t.outputs) == ["sig", "head"]
    assert list(t.values) == [n.name for n in g]
    assert t.formats["pad"] == t.formats["in"] == QFormat(6, 9)
    assert t.codes["c1"].dtype == np.int64 and t.values["c1"].dtype == np.float32
    np.testing.assert_array_equal(t.values["c1"], t.codes["c1"] / 512.0)
    assert set(t.counters["c1"]) == {"weights", "bias", "acc", "requant"}
    assert set(t.counters["pw"]) == {"weights", "acc", "requant"}  # no bias
    assert set(t.counters["in"]) == {"input"}
    assert set(t.counters["add"]) == {"add"} and set(t.counters["up"]) == {"upsample"}
    assert set(t.counters["cat"]) == {"concat"} and set(t.counters["sig"]) == {"act"}
    assert t.counters["c1"]["acc"].elements == t.codes["c1"].size
    # counters=False: same codes, no counting; keep_values=False: outputs only
    t2 = fixed_exec.run(g, x, Plan.uniform("Q6.9"), counters=False, keep_values=False)
    assert t2.counters == {} and set(t2.values) == set(t2.outputs) == {"sig", "head"}
    np.testing.assert_array_equal(t2.outputs["head"], t.outputs["head"])
    np.testing.assert_array_equal(t2.codes["head"], t.codes["head"])


def test_overflow_is_counted_and_modes_differ():
    g = every_op_graph(scale=2.0)
    x = np.random.default_rng(4).uniform(-6, 6, (1, 8, 8, 3))
    sat = fixed_exec.run(g, x, Plan.uniform("Q2.5", acc_bits=16))
    wrap = fixed_exec.run(g, x, Plan.uniform("Q2.5", acc_bits=16, overflow="wrap"))
    assert sat.counters["in"]["input"].events > 0
    assert sat.counters["c1"]["requant"].events > 0
    assert sat.counters["c1"]["requant"].headroom_bits < 0
    assert not np.array_equal(sat.codes["c1"], wrap.codes["c1"])


def test_batch_and_thread_independence():
    g = every_op_graph()
    x = np.random.default_rng(5).uniform(-2, 2, (3, 12, 9, 3))
    plan = Plan.uniform("Q4.7", acc_bits=24, rounding="half_even")
    batch = fixed_exec.run(g, x, plan)
    singles = [fixed_exec.run(g, x[i:i + 1], plan) for i in range(3)]
    for node in g:
        np.testing.assert_array_equal(batch.codes[node.name], np.concatenate([s.codes[node.name] for s in singles]))
        for site, c in batch.counters[node.name].items():
            if site in ("weights", "bias"):  # parameters: counted once per run
                assert c == singles[0].counters[node.name][site]
            else:
                assert c.events == sum(s.counters[node.name][site].events for s in singles)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fixed_exec.run(g, x, plan)
    finally:
        numba.set_num_threads(threads)
    for node in g:
        np.testing.assert_array_equal(one.codes[node.name], batch.codes[node.name])


def test_parameters_are_quantized_once_per_program_and_counters_do_not_accumulate():
    g = every_op_graph()
    program = fixed_exec.prepare(g, Plan.uniform("Q6.9"))
    x = np.zeros((1, 8, 8, 3))
    kernel = program.params["c1"].kernel
    a, b = program.run(x), program.run(x)  # the program owns its parameters: quantized once
    assert program.params["c1"].kernel is kernel and not kernel.flags.writeable
    assert a.counters["c1"]["weights"] == b.counters["c1"]["weights"]
    assert a.counters["c1"]["weights"].elements == g["c1"].weights["kernel"].size
    assert a.counters["c1"]["weights"] is not b.counters["c1"]["weights"]


def test_programs_keep_the_callers_graph_untouched_and_fuse_as_a_pass():
    g = every_op_graph()
    before = [(n.name, n.op, dict(n.attrs)) for n in g]
    program = fixed_exec.prepare(g, Plan.uniform("Q6.9"))
    assert [(n.name, n.op, dict(n.attrs)) for n in g] == before
    assert any("fused_activation" in n.attrs for n in program.graph)
    assert any(note.startswith("fuse_activation:") for note in program.graph.notes)


def test_the_plan_mode_picks_the_backend():
    g = every_op_graph()
    x = np.zeros((1, 8, 8, 3))
    with pytest.raises(PlanError, match="weights"):
        fixed_exec.prepare(g, Plan.uniform("Q6.9", mode="weights"))
    with pytest.raises(PlanError, match="plan's mode picks"):
        qsim.runtime.prepare(g, Plan.uniform("Q6.9", mode="weights"), executor="fixed")
    assert qsim.runtime.run(g, x, plan=Plan.uniform("Q6.9", mode="weights")).executor == "weights"


def test_weights_mode_is_float_with_quantized_parameters():
    g = every_op_graph(bn=False)
    x = np.random.default_rng(6).uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    plan = Plan.uniform("Q2.5", mode="weights")
    t = run(g, x, plan=plan)
    assert t.codes == {} and set(t.counters) == {"c1", "dw", "pw", "c2", "head"}
    nodes = []
    for node in g:
        if "kernel" in node.weights:
            w = {k: (np.round(v * 32) / 32).astype(np.float32) for k, v in node.weights.items()}  # Q2.5, no ties
            node = Node(node.name, node.op, node.inputs, node.attrs, w)
        nodes.append(node)
    want = float_exec.run(Graph(nodes, g.outputs), x)
    np.testing.assert_array_equal(t.outputs["head"], want.outputs["head"])
    assert not np.array_equal(t.outputs["head"], float_exec.run(g, x).outputs["head"])


def test_errors_name_the_node():
    g = every_op_graph()
    x = np.zeros((1, 8, 8, 3))
    with pytest.raises(InputError, match="channels"):
        fixed_exec.run(g, np.zeros((1, 8, 8, 4)), "Q6.9")
    with pytest.raises(PlanError, match="layer 'c1' field 'acc_bits'"):
        fixed_exec.run(g, x, Plan.uniform("Q6.9", acc_bits=16))
    with pytest.raises(PlanError, match="expected a Plan"):
        fixed_exec.run(g, x, 3.5)
    bad = every_op_graph()
    bad["dw"].weights["kernel"][0, 0, 0, 0] = np.nan
    with pytest.raises(ModelError, match="'dw'.*non-finite"):
        fixed_exec.run(bad, x, "Q6.9")
    huge = every_op_graph()
    with pytest.raises(PlanError, match="node 'c1'.*exact accumulation"):
        fixed_exec.run(huge, x + 1e6, Plan.uniform("Q20.11", acc_bits=64, weights="Q1.30"))


@pytest.fixture(scope="module")
def a98_graph(tf, data_dir, tmp_path_factory):
    """The paper's A98 at alpha 1.0 with the ImageNet backbone weights, exported to .h5."""
    import qsim
    from reference.export import export_h5
    from reference.models import build_model

    model = build_model("A", alpha=1.0, frozen=98, weights="imagenet", seed=1)
    path = export_h5(model, tmp_path_factory.mktemp("a98") / "A98.h5")
    return qsim.load_model(path)


def test_a98_wide_formats_converge_to_float(a98_graph):
    x = np.random.default_rng(7).uniform(-1, 1, (1, 64, 96, 3)).astype(np.float32)
    plan = Plan.uniform("Q10.21", weights="Q7.24", acc_bits=64, rounding="half_even")
    fixed = fixed_exec.run(a98_graph, x, plan)
    ref = float_exec.run(a98_graph, x, dtype=np.float64)
    worst = 0.0
    for node in a98_graph:
        want = ref.values[node.name]
        rel = np.max(np.abs(fixed.values[node.name] - want)) / max(1.0, np.max(np.abs(want)))
        worst = max(worst, rel)
    assert worst < 1e-5, worst
    assert all(c.events == 0 for cs in fixed.counters.values() for c in cs.values())


def test_a98_q9_error_is_the_weight_quantization(a98_graph):
    """At q9 (Q6.9 everywhere) A's error comes from the 9-bit weights: the full-integer run
    is as far from float as the weights-only run, and 20-bit weights shrink it >10x."""
    x = np.random.default_rng(8).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    ref = float_exec.run(a98_graph, x, dtype=np.float64).values
    a = "block_13_expand_relu"

    def mean_err(plan):
        t = run(a98_graph, x, plan=plan)
        assert sum(c.events for cs in t.counters.values() for c in cs.values()) == 0
        return float(np.mean(np.abs(t.values[a] - ref[a])))

    full = mean_err(Plan.uniform("q9", acc_bits=32))
    weights_only = mean_err(Plan.uniform("q9", mode="weights"))
    wide_weights = mean_err(Plan.uniform("Q6.9", weights="Q6.20", acc_bits=48))
    assert abs(full - weights_only) < 0.1 * weights_only, (full, weights_only)
    assert wide_weights < 0.1 * full, (wide_weights, full)
    assert full < 0.05 * float(np.mean(np.abs(ref[a])))
