"""The fixed-point executor on the MCU layers: dense, rescale, pools, multiply, reshape (issue 10).

* narrow formats: every node's codes and overflow counts equal a chain of the slow Python-int
  reference kernels, on an image graph (Rescaling stem, "same" pools with edge windows, an SE
  block with global pool, dense on (N, 1, 1, C) and multiply, Flatten + Dense head) and a
  feature graph (dense over rank 2 and 3, rescale and an unfolded batch_norm over rank 3);
* wide formats converge to the float executor; batch independence; the new sites and the
  pass-through formats; a plan from `qsim profile` runs these graphs.
"""
from __future__ import annotations

import numpy as np
import pytest

from qsim.executors import fixed_exec, float_exec
from qsim.fixed.cast import quantize
from qsim.graph.ir import Graph, Node, resolve_pads
from qsim.graph.passes.quantize_weights import mac_params
from qsim.kernels.ref.conv import conv2d_ref
from qsim.kernels.ref.eltwise import relu_ref
from qsim.kernels.ref.multiply import multiply_ref
from qsim.kernels.ref.pool import avg_pool_ref, global_avg_pool_ref, global_max_pool_ref, max_pool_ref
from qsim.plan import SITES, Plan


def _w(rng, *shape, s=0.4):
    return (rng.standard_normal(shape) * s).astype(np.float32)


def image_graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    nodes = [
        Node("in", "input", attrs={"shape": (None, None, 3)}),
        Node("scale", "rescale", ["in"], {}, {"scale": np.array([0.5, 0.25, 1.0], np.float32),
                                              "offset": np.array([-0.5, 0.125, 0.0], np.float32)}),
        Node("c1", "conv2d", ["scale"], {"strides": (1, 1), "pads": "same"}, {"kernel": _w(rng, 3, 3, 3, 4),
                                                                             "bias": _w(rng, 4)}),
        Node("r1", "relu", ["c1"], {}),
        Node("avg", "avg_pool", ["r1"], {"pool_size": (3, 3), "strides": (2, 2), "pads": "same"}),
        Node("mx", "max_pool", ["c1"], {"pool_size": (2, 2), "strides": (2, 2), "pads": "same"}),
        Node("se_pool", "global_avg_pool", ["avg"], {"keepdims": True}),
        Node("se_fc1", "dense", ["se_pool"], {}, {"kernel": _w(rng, 4, 2), "bias": _w(rng, 2)}),
        Node("se_relu", "relu", ["se_fc1"], {}),
        Node("se_fc2", "dense", ["se_relu"], {}, {"kernel": _w(rng, 2, 4)}),
        Node("se_mul", "multiply", ["avg", "se_fc2"]),
        Node("gmax", "global_max_pool", ["mx"], {"keepdims": False}),
        Node("gavg", "global_avg_pool", ["se_mul"], {"keepdims": False}),
        Node("flat", "reshape", ["se_mul"], {"shape": (-1,)}),
        Node("head", "dense", ["flat"], {}, {"kernel": _w(rng, 4 * 4 * 4, 3, s=0.2), "bias": _w(rng, 3)}),
    ]
    return Graph(nodes, ["head", "gavg", "gmax"])


def feature_graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    nodes = [
        Node("in", "input", attrs={"shape": (6,)}),
        Node("fc1", "dense", ["in"], {}, {"kernel": _w(rng, 6, 8), "bias": _w(rng, 8)}),
        Node("r1", "relu", ["fc1"], {"max_value": 6.0}),
        Node("seq", "reshape", ["r1"], {"shape": (2, 4)}),
        Node("fc2", "dense", ["seq"], {}, {"kernel": _w(rng, 4, 3), "bias": _w(rng, 3)}),
        Node("norm", "rescale", ["fc2"], {}, {"scale": _w(rng, 3, s=1.0), "offset": _w(rng, 3)}),
        Node("bn", "batch_norm", ["norm"], {"epsilon": 1e-3}, {
            "gamma": rng.uniform(0.5, 1.5, 3).astype(np.float32), "beta": _w(rng, 3),
            "mean": _w(rng, 3), "variance": rng.uniform(0.5, 2, 3).astype(np.float32)}),
        Node("prod", "multiply", ["bn", "fc2"]),
        Node("out", "reshape", ["prod"], {"shape": (6,)}),
    ]
    return Graph(nodes, ["out"])


def reference_chain(graph: Graph, x: np.ndarray, plan: Plan) -> tuple[dict, dict]:
    """The graph on the slow reference kernels only: codes and {node: {site: events}}."""
    codes, fmts, events = {}, {}, {}
    for node in graph:
        np_ = plan.for_node(node.name)
        ins, in_f = [codes[i] for i in node.inputs], [fmts[i] for i in node.inputs]
        ev = events[node.name] = {}
        fmt, a = np_.act, node.attrs
        if node.op == "input":
            out = quantize(x, fmt, rounding=np_.rounding_at("input"), overflow=np_.overflow_at("input"))
        elif node.op in ("conv2d", "dense", "rescale", "batch_norm"):
            kernel, bias, depthwise = mac_params(node)
            wq = quantize(kernel, np_.weights, rounding=np_.rounding_at("weights"), overflow=np_.overflow_at("weights"))
            bq = None if bias is None else quantize(bias, np_.bias, rounding=np_.rounding_at("bias"),
                                                    overflow=np_.overflow_at("bias"))
            xin = ins[0]
            if node.op != "conv2d":  # over the last axis of any rank: a 1x1 conv at every position
                wq = wq.reshape((1, 1) + wq.shape) if wq.ndim == 2 else wq
                xin = xin.reshape(-1, 1, 1, xin.shape[-1])
            strides = tuple(a.get("strides", (1, 1)))
            pads = resolve_pads(a.get("pads", (0, 0, 0, 0)), xin.shape[1:3], wq.shape[:2], strides)
            out, t = conv2d_ref(xin, wq, bq, in_fmt=in_f[0], w_fmt=np_.weights, b_fmt=np_.bias, out_fmt=fmt,
                                acc_bits=np_.acc_bits, strides=strides, pads=pads, depthwise=depthwise,
                                rounding=np_.rounding_at("requant"), overflow=np_.overflow_at("requant"),
                                acc_overflow=np_.overflow_at("acc"), acc_saturation=np_.acc_saturation)
            out = out.reshape(ins[0].shape[:-1] + out.shape[-1:])
            ev.update(acc=t["acc"].events, requant=t["requant"].events)
        elif node.op == "relu":
            out, t = relu_ref(ins[0], in_fmt=in_f[0], out_fmt=fmt, max_value=a.get("max_value"),
                              rounding=np_.rounding_at("act"), overflow=np_.overflow_at("act"))
            ev["act"] = t.events
        elif node.op in ("avg_pool", "global_avg_pool"):
            kw = dict(in_fmt=in_f[0], out_fmt=fmt, rounding=np_.rounding_at("pool"), overflow=np_.overflow_at("pool"))
            if node.op == "avg_pool":
                out, t = avg_pool_ref(ins[0], a["pool_size"], a["strides"], a["pads"], **kw)
            else:
                out, t = global_avg_pool_ref(ins[0], a["keepdims"], **kw)
            ev["pool"] = t.events
        elif node.op == "multiply":
            out, t = multiply_ref(ins, in_f, out_fmt=fmt, rounding=np_.rounding_at("mul"), overflow=np_.overflow_at("mul"))
            ev["mul"] = t.events
        elif node.op == "max_pool":
            out, fmt = max_pool_ref(ins[0], a["pool_size"], a["strides"], a["pads"]), in_f[0]
        elif node.op == "global_max_pool":
            out, fmt = global_max_pool_ref(ins[0], a["keepdims"]), in_f[0]
        elif node.op == "reshape":
            out, fmt = ins[0].reshape((ins[0].shape[0],) + tuple(a["shape"])), in_f[0]
        else:
            raise AssertionError(node.op)
        codes[node.name], fmts[node.name] = out, fmt
    return codes, events


GRAPHS = {"image": (image_graph, (2, 7, 8, 3), 2.0), "features": (feature_graph, (3, 6), 3.0)}
NARROW_PLANS = {
    "q9-half_up-saturate": Plan.uniform("q9", acc_bits=32),
    "Q1.6-floor-wrap": Plan.uniform("Q1.6", acc_bits=16, rounding="floor", overflow="wrap"),
    "Q3.4-half_even-per-step": Plan.uniform("Q3.4", acc_bits=17, rounding="half_even", acc_saturation="per_step",
                                            weights="Q1.6"),
    "mixed": {"avg": {"act": "Q0.4", "sites": {"pool": {"rounding": "half_away"}}},
              "se_mul": {"act": "UQ0.5", "rounding": "toward_zero"}, "gavg": "Q5.10",
              "prod": {"act": "Q1.3", "sites": {"mul": {"overflow": "wrap"}}},
              "se_pool": "Q1.9", "norm": "Q2.7"},  # per layer, over a Q4.7 default (the graph's layers)
}


def _plan(name: str, g: Graph) -> Plan:
    plan = NARROW_PLANS[name]
    if isinstance(plan, Plan):
        return plan
    return Plan.per_layer({k: v for k, v in plan.items() if k in g}, default="Q4.7", acc_bits=24,
                          rounding="half_even")


@pytest.mark.parametrize("graph_name", GRAPHS)
@pytest.mark.parametrize("plan_name", NARROW_PLANS)
def test_narrow_formats_equal_the_reference_chain(graph_name, plan_name):
    build, shape, amp = GRAPHS[graph_name]
    g = build()
    plan = _plan(plan_name, g)
    x = np.random.default_rng(1).uniform(-amp, amp, shape)
    trace = fixed_exec.run(g, x, plan)
    want, events = reference_chain(g, x, plan)
    for node in g:
        np.testing.assert_array_equal(trace.codes[node.name], want[node.name], err_msg=f"{plan_name}: {node.name}")
        for site, count in events[node.name].items():
            assert trace.counters[node.name][site].events == count, (plan_name, node.name, site)
    if plan_name in ("Q1.6-floor-wrap", "mixed"):
        assert sum(c.events for cs in trace.counters.values() for c in cs.values()) > 0


@pytest.mark.parametrize("graph_name", GRAPHS)
def test_wide_formats_converge_to_float(graph_name):
    build, shape, amp = GRAPHS[graph_name]
    g = build()
    x = np.random.default_rng(2).uniform(-amp, amp, shape)
    fixed = fixed_exec.run(g, x, Plan.uniform("Q10.21", weights="Q7.24", acc_bits=64, rounding="half_even"))
    ref = float_exec.run(g, x, dtype=np.float64)
    for node in g:
        want = ref.values[node.name]
        assert fixed.values[node.name].shape == want.shape, node.name
        err = float(np.max(np.abs(fixed.values[node.name] - want)))
        assert err <= 1e-5 * max(1.0, float(np.max(np.abs(want)))), (node.name, err)
    assert all(c.events == 0 for cs in fixed.counters.values() for c in cs.values())


def test_sites_and_pass_through_formats():
    g = image_graph()
    plan = Plan.per_layer({"c1": "Q3.12", "avg": "Q2.13", "se_mul": "Q1.14"}, default="Q6.9")
    t = fixed_exec.run(g, np.random.default_rng(3).uniform(-1, 1, (1, 7, 8, 3)), plan)
    assert {"pool", "mul"} <= set(SITES)
    assert set(t.counters["avg"]) == {"pool"} and set(t.counters["gavg"]) == {"pool"}
    assert set(t.counters["se_mul"]) == {"mul"}
    assert set(t.counters["se_fc1"]) == {"weights", "bias", "acc", "requant"}
    assert set(t.counters["scale"]) == {"weights", "bias", "acc", "requant"}
    assert t.formats["mx"] == t.formats["gmax"] == t.formats["c1"]  # max pools keep the input's format
    assert t.formats["flat"] == t.formats["se_mul"] and str(t.formats["avg"]) == "Q2.13"
    assert plan.activation_formats(g)["flat"] == t.formats["flat"]
    assert t.codes["flat"].shape == (1, 64) and t.codes["gavg"].shape == (1, 4)


@pytest.mark.parametrize("graph_name", GRAPHS)
def test_batch_independence(graph_name):
    build, shape, amp = GRAPHS[graph_name]
    g, plan = build(), Plan.uniform("Q4.7", acc_bits=24, rounding="half_even")
    x = np.random.default_rng(5).uniform(-amp, amp, (3,) + shape[1:])
    batch = fixed_exec.run(g, x, plan)
    singles = [fixed_exec.run(g, x[i:i + 1], plan) for i in range(3)]
    for node in g:
        np.testing.assert_array_equal(batch.codes[node.name], np.concatenate([s.codes[node.name] for s in singles]))


def test_a_profile_plan_runs_these_ops():
    """`qsim profile`'s suggestion gives every new op a format; the run is exact against the refs."""
    from qsim.analysis.profile import Profile

    g = feature_graph()
    x = np.random.default_rng(6).uniform(-3, 3, (8, 6))
    prof = Profile(g).update(float_exec.run(g, x))
    plan = Plan.per_layer(prof.suggest(word_bits=16), default="Q6.9")
    assert "prod" in plan.nodes and "out" not in prof.suggest()  # reshape inherits its input's format
    trace = fixed_exec.run(g, x, plan)
    want, _ = reference_chain(g, x, plan)
    for node in g:
        np.testing.assert_array_equal(trace.codes[node.name], want[node.name], err_msg=node.name)
