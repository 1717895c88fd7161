"""`qsim export`: the C arrays parse back to exactly the fixed executor's parameter codes;
the hls4ml precision config round-trips through `Plan`."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from qsim.cli import main
from qsim.errors import PlanError
from qsim.export import c_name, hls4ml_config, parse_ap_type, plan_from_hls4ml
from qsim.graph.passes.quantize_weights import quantize_params
from qsim.model import load_model
from qsim.plan import Plan
from tests.executors.test_fixed_exec import every_op_graph

A98 = Path(__file__).resolve().parents[2] / "qsim" / "assets" / "a98_alpha1.0.h5"
ARRAY = re.compile(r"static const (\w+) (\w+)\[(\d+)\] = \{(.*?)\};", re.S)
DEFINE = re.compile(r"#define (\w+) (-?\d+)")


def parse_header(text: str) -> tuple[dict[str, tuple[str, np.ndarray]], dict[str, int]]:
    arrays = {}
    for ctype, name, n, body in ARRAY.findall(text):
        vals = np.array([int(v) for v in body.replace("\n", " ").split(",") if v.strip()], dtype=np.int64)
        assert vals.size == int(n)
        arrays[name] = (ctype, vals)
    return arrays, {k: int(v) for k, v in DEFINE.findall(text)}


def test_a98_c_headers_hold_the_executors_codes(tmp_path):
    out = tmp_path / "c"
    assert main(["export", str(A98), "--format", "Q6.9", "--out", str(out)]) == 0
    graph = load_model(A98)
    params = quantize_params(graph, Plan.uniform("Q6.9").validate(graph))
    model_h = (out / "model.h").read_text()
    assert f"#define QSIM_N_LAYERS {len(params)}" in model_h
    for name, p in params.items():
        text = (out / f"{c_name(name)}.h").read_text()
        arrays, defines = parse_header(text)
        L = c_name(name).upper()
        ctype, w = arrays[f"{c_name(name)}_weights"]
        assert ctype == "int16_t" and "weights: Q6.9" in text
        np.testing.assert_array_equal(w, p.kernel.ravel())
        assert tuple(defines[f"{L}_{a}"] for a in ("KH", "KW", "CIN")) == p.kernel.shape[:3]
        assert defines[f"{L}_OUT_SHIFT"] == 9 and defines[f"{L}_BIAS_SHIFT"] == 9
        if p.bias is not None:
            np.testing.assert_array_equal(arrays[f"{c_name(name)}_bias"][1], p.bias)
        assert f'#include "{c_name(name)}.h"' in model_h


def test_word_type_follows_the_format(tmp_path):
    graph = every_op_graph()
    plan = Plan.uniform("Q2.5", acc_bits=32).with_nodes({"c1": {"weights": "Q1.20", "bias": "Q3.12"}})
    plan.save(tmp_path / "p.json")
    from qsim.export import export
    export(graph, plan, tmp_path / "o")
    arrays, _ = parse_header((tmp_path / "o" / "c1.h").read_text())
    assert arrays["c1_weights"][0] == "int32_t" and arrays["c1_bias"][0] == "int16_t"
    assert parse_header((tmp_path / "o" / "pw.h").read_text())[0]["pw_weights"][0] == "int8_t"


def test_hls_export_types_and_config(tmp_path):
    graph = every_op_graph()
    plan = Plan.uniform("Q6.9", acc_bits=40, rounding="half_even", overflow="saturate",
                        sites={"acc": {"overflow": "wrap"}})
    from qsim.export import export
    files = export(graph, plan, tmp_path, target="hls")
    types = (tmp_path / "c1_types.h").read_text()
    assert "typedef ap_fixed<16,7,AP_RND_CONV,AP_SAT> c1_weight_t;" in types
    assert "typedef ap_fixed<40,22,AP_TRN,AP_WRAP> c1_accum_t;" in types  # 18 fraction bits = 9 + 9
    cfg = json.loads((tmp_path / "hls4ml_config.json").read_text())
    assert cfg == hls4ml_config(plan, graph) and tmp_path / "hls4ml_config.json" in files
    assert cfg["Model"]["Precision"] == "ap_fixed<16,7,AP_RND_CONV,AP_SAT>"


SITES_OF = {"requant", "act", "add", "concat", "upsample", "input", "weights", "bias", "acc"}


def resolved(plan, graph):
    out = {}
    for node in graph:
        n = plan.for_node(node.name)
        out[node.name] = (str(n.act), str(n.weights), str(n.bias), n.acc_bits if node.op in
                          ("conv2d", "depthwise_conv2d", "batch_norm") else None,
                          {s: (n.rounding_at(s).value, n.overflow_at(s).value) for s in SITES_OF})
    return out


def test_plan_round_trips_through_hls4ml():
    graph = every_op_graph()
    plan = Plan.per_layer({"c1": {"weights": "Q1.14", "act": "Q4.11", "acc_bits": 48,
                                  "sites": {"weights": {"rounding": "half_even"}, "acc": {"overflow": "wrap"}}},
                           "r1": {"act": "UQ3.5", "rounding": "floor"}}, default="Q6.9")
    back = plan_from_hls4ml(hls4ml_config(plan, graph))
    for node in graph:
        if node.op in ("pad", "identity"):
            continue
        a, b = resolved(plan, graph)[node.name], resolved(back, graph)[node.name]
        site = {"conv2d": "requant", "depthwise_conv2d": "requant", "batch_norm": "requant"}.get(node.op)
        # formats, width and the modes hls4ml can express agree
        assert a[0] == b[0], node.name
        if site:
            assert a[1:4] == b[1:4] and all(a[4][s] == b[4][s] for s in ("requant", "weights", "bias")), node.name
            assert a[4]["acc"][1] == b[4]["acc"][1]
    assert hls4ml_config(back, graph) == hls4ml_config(plan, graph)


def test_hls4ml_config_to_plan_and_back():
    graph = every_op_graph()
    cfg = {"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1},
           "LayerName": {"c1": {"Precision": {"weight": "ap_fixed<8,1,AP_RND,AP_SAT>", "bias": "ap_fixed<12,4>",
                                              "result": "ap_fixed<16,6,AP_RND_CONV,AP_SAT>",
                                              "accum": "ap_fixed<32,12>"}}}}
    plan = plan_from_hls4ml(cfg)
    c1 = plan.for_node("c1")
    assert (str(c1.weights), str(c1.bias), str(c1.act), c1.acc_bits) == ("Q0.7", "Q3.8", "Q5.10", 32)
    assert (c1.rounding_at("requant").value, c1.rounding_at("weights").value) == ("half_even", "half_up")
    assert plan.for_node("r1").rounding.value == "floor"  # ap_fixed<16,6> = AP_TRN, AP_WRAP
    again = hls4ml_config(plan, graph)
    assert again["LayerName"]["c1"]["Precision"]["weight"] == "ap_fixed<8,1,AP_RND,AP_SAT>"
    assert hls4ml_config(plan_from_hls4ml(again), graph) == again


def test_bad_configs_and_targets_name_the_field(tmp_path):
    with pytest.raises(PlanError, match="LayerName.c1.Precision.weight"):
        plan_from_hls4ml({"Model": {"Precision": "ap_fixed<16,6>"}, "LayerName": {"c1": {"Precision": {"weight": "int8"}}}})
    with pytest.raises(PlanError, match="Model.Precision"):
        plan_from_hls4ml({"Model": {}})
    assert parse_ap_type("ap_ufixed<8,0,AP_RND_INF,AP_SAT>", "x")[0].signed is False
    assert main(["export", str(A98), "--format", "fp16", "--out", str(tmp_path)]) == 1
