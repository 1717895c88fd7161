"""Plan: constructors, per-node fallback, JSON round trip, and validation errors naming layer and field."""
from __future__ import annotations

import json

import numpy as np
import pytest

from qsim.errors import PlanError
from qsim.fixed import Overflow, QFormat, Rounding
from qsim.graph.ir import Graph, Node
from qsim.plan import SITES, Mode, Plan


def small_graph() -> Graph:
    rng = np.random.default_rng(0)
    return Graph([
        Node("in", "input", attrs={"shape": (None, None, 3)}),
        Node("conv", "conv2d", ["in"], {"strides": (1, 1), "pads": "same"},
             {"kernel": rng.normal(size=(3, 3, 3, 4)).astype(np.float32), "bias": np.zeros(4, np.float32)}),
        Node("relu", "relu", ["conv"], {"max_value": 6.0}),
    ], ["relu"])


@pytest.mark.parametrize("short, full", [("q9", "Q6.9"), ("Q8", "Q7.8"), ("q7", "Q8.7"), ("Q6", "Q9.6")])
def test_paper_shorthands_are_16_bit_words(short, full):
    n = Plan.uniform(short).for_node("any")
    assert str(n.weights) == str(n.bias) == str(n.act) == full
    assert n.act.word_bits == 16


def test_uniform_defaults_and_sites():
    p = Plan.uniform("Q6.9", acc_bits=24, rounding="half_even", overflow="wrap",
                     sites={"acc": {"overflow": "saturate"}, "weights": {"rounding": "half_away"}})
    n = p.for_node("conv")
    assert n.acc_bits == 24 and p.mode is Mode.FULL
    assert n.rounding_at("requant") is Rounding.HALF_EVEN
    assert n.rounding_at("weights") is Rounding.HALF_AWAY
    assert n.overflow_at("acc") is Overflow.SATURATE
    assert n.overflow_at("add") is Overflow.WRAP
    for site in SITES:
        n.rounding_at(site), n.overflow_at(site)


def test_per_layer_overrides_fall_back_to_defaults():
    p = Plan.per_layer({"conv": {"act": "Q3.12", "sites": {"acc": {"overflow": "wrap"}}}, "relu": "Q2.13"},
                       default="Q7.8", acc_bits=40)
    conv = p.for_node("conv")
    assert str(conv.act) == "Q3.12" and str(conv.weights) == "Q7.8" and conv.acc_bits == 40
    assert conv.overflow_at("acc") is Overflow.WRAP and conv.overflow_at("requant") is Overflow.SATURATE
    assert str(p.for_node("relu").weights) == "Q2.13"
    assert str(p.for_node("other").act) == "Q7.8"
    # with_nodes merges sites site by site
    p2 = p.with_nodes({"conv": {"sites": {"acc": {"rounding": "floor"}}}})
    assert p2.for_node("conv").overflow_at("acc") is Overflow.WRAP
    assert p2.for_node("conv").rounding_at("acc") is Rounding.FLOOR


def test_json_round_trip(tmp_path):
    p = Plan.per_layer({"conv": {"weights": "ap_fixed<16,2>", "acc_saturation": "per_step"}},
                       default="Q6.9", rounding="floor", sites={"input": {"rounding": "half_even"}})
    path = p.save(tmp_path / "plan.json")
    doc = json.loads(path.read_text())
    assert doc["qsim_plan"] == 1 and doc["nodes"]["conv"]["weights"] == "Q1.14"
    q = Plan.load(path)
    assert q == p
    assert q.for_node("conv") == p.for_node("conv")
    assert q.for_node("conv").acc_saturation == "per_step"


def test_hand_written_json(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({
        "qsim_plan": 1, "mode": "weights",
        "default": {"weights": "Q2.13", "bias": "Q6.9", "act": "Q6.9", "acc_bits": 32,
                    "acc_saturation": "final", "rounding": "AP_RND_CONV", "overflow": "AP_SAT"},
        "nodes": {"conv": {"weights": "Q0.15"}},
    }))
    p = Plan.load(path)
    assert p.mode is Mode.WEIGHTS
    assert p.for_node("conv").rounding is Rounding.HALF_EVEN
    assert str(p.for_node("conv").weights) == "Q0.15"


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d["default"].update(weights="Q-5.3"), r"default field 'weights'"),
    (lambda d: d["default"].update(rounding="round_up"), r"field 'rounding'.*unknown rounding"),
    (lambda d: d["default"].update(acc_bits=80), r"field 'acc_bits'"),
    (lambda d: d["default"].update(acc_saturation="sometimes"), r"acc_saturation"),
    (lambda d: d["default"].update(colour="blue"), r"unknown field"),
    (lambda d: d["default"].pop("act"), r"missing field"),
    (lambda d: d["default"].update(sites={"accumulator": {}}), r"unknown site 'accumulator'"),
    (lambda d: d["nodes"].update(conv={"act": "Q99.99"}), r"node 'conv' field 'act'"),
    (lambda d: d.update(qsim_plan=7), r"schema version"),
    (lambda d: d.update(mode="int4"), r"unknown plan mode"),
])
def test_bad_json_is_a_plan_error_naming_the_field(tmp_path, mutate, match):
    doc = Plan.uniform("Q6.9").to_dict()
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(PlanError, match=match):
        Plan.load(path)


def test_unreadable_files(tmp_path):
    with pytest.raises(PlanError, match="not found"):
        Plan.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PlanError, match="not valid JSON"):
        Plan.load(bad)


def test_validate_unknown_layer():
    with pytest.raises(PlanError, match=r"unknown layer name\(s\) \['block_99'\]"):
        Plan.per_layer({"block_99": "Q6.9"}).validate(small_graph())


def test_validate_accumulator_narrower_than_a_product():
    with pytest.raises(PlanError, match=r"layer 'conv' field 'acc_bits'.*narrower than one product"):
        Plan.uniform("Q6.9", acc_bits=31).validate(small_graph())
    Plan.uniform("Q6.9", acc_bits=32).validate(small_graph())


def test_validate_bias_alignment():
    with pytest.raises(PlanError, match=r"layer 'conv' field 'bias'.*cannot be aligned"):
        Plan.uniform("UQ0.8", weights="Q0.7", bias="Q0.31", acc_bits=40).validate(small_graph())
    with pytest.raises(PlanError, match=r"layer 'conv' field 'bias'.*acc_bits"):
        Plan.uniform("Q6.9", bias="Q30.1").validate(small_graph())


def test_validate_ignores_the_bias_format_of_a_mac_without_bias():
    """A bias-less conv never reads its bias format: a misaligned one is no reason to refuse."""
    g = small_graph()
    g["conv"].weights.pop("bias", None)
    Plan.uniform("Q6.9", bias="Q30.1").validate(g)
    with pytest.raises(PlanError, match="field 'acc_bits'"):  # the other checks still hold
        Plan.uniform("Q6.9", bias="Q30.1", acc_bits=20).validate(g)


def test_validate_uses_the_producers_format():
    """The conv's input format is the input node's act: a wide input needs a wide accumulator."""
    g = small_graph()
    with pytest.raises(PlanError, match="input Q20.11"):
        Plan.per_layer({"in": "Q20.11"}, default="Q6.9").validate(g)
    formats = Plan.per_layer({"in": "Q0.7"}, default="Q6.9").activation_formats(g)
    assert formats["in"] == QFormat(0, 7) and formats["conv"] == QFormat(6, 9)


def test_weights_mode_ignores_activation_formats():
    Plan.uniform("Q6.9", acc_bits=8, mode="weights").validate(small_graph())


def test_validate_rejects_unsigned_64_bit_words():
    with pytest.raises(PlanError, match=r"layer 'relu' field 'act'.*unsigned 64-bit"):
        Plan.per_layer({"relu": {"act": "UQ32.32"}}).validate(small_graph())
