"""Per-layer overflow report over hand-made traces with real `OverflowCounter`s."""
from __future__ import annotations

import json
import math

import numpy as np

from qsim.analysis.overflow import overflow_report
from qsim.analysis.report import to_jsonable
from qsim.fixed import QFormat
from qsim.fixed.counters import OverflowCounter
from qsim.graph import Graph, Node
from qsim.trace import Trace


def _counter(site, raw, lo=-128, hi=127):
    c = OverflowCounter(site)
    c.observe(np.asarray(raw, dtype=np.int64), lo=lo, hi=hi)
    return c


def _trace(acc_raw, image_value):
    q = QFormat.parse("Q2.5")
    return Trace(
        executor="fixed",
        outputs={"conv": np.array([image_value])},
        values={"x": np.array([0.5, -0.25]), "conv": np.array([image_value, -1.0])},
        formats={"x": q, "conv": q},
        counters={
            "x": {"input": _counter("x/input", [16, -8])},
            "conv": {"weights": _counter("conv/weights", [200, 3, -4]),
                     "acc": _counter("conv/acc", acc_raw, lo=-2**15, hi=2**15 - 1)},
        },
    )


GRAPH = Graph([Node("x", "input", attrs={"shape": (None, None, 3)}),
               Node("conv", "conv2d", inputs=["x"])], outputs=["conv"])


def test_counts_merge_over_images_and_parameters_count_once():
    rep = overflow_report([_trace([2**15, 5, -7], 1.5), _trace([-2**16, 0, 1], 3.0)], GRAPH)
    conv = rep.layers["conv"]
    assert rep.n_images == 2
    assert conv.op == "conv2d" and conv.format == "Q2.5"
    # acc: one event per image, 6 elements in all; weights quantized once: 1 event of 3
    assert (conv.sites["acc"].events, conv.sites["acc"].elements) == (2, 6)
    assert (conv.sites["weights"].events, conv.sites["weights"].elements) == (1, 3)
    assert conv.events == 3 and rep.total_events == 3
    assert conv.worst_site == "acc" and conv.worst_rate == 2 / 6
    # worst headroom: 2**16 against a limit of 2**15 -> -1 bit
    assert conv.headroom_bits == -1.0
    assert conv.range == (-1.0, 3.0)
    assert rep.layers["x"].events == 0 and rep.layers["x"].headroom_bits == math.log2(128 / 16)
    assert rep.first_overflow().name == "conv"


def test_input_counters_are_not_mutated():
    t = _trace([2**15], 1.0)
    before = t.counters["conv"]["acc"].to_dict()
    overflow_report([t, t])
    assert t.counters["conv"]["acc"].to_dict() == before


def test_json_and_markdown():
    rep = overflow_report(_trace([1, 2], 0.0), GRAPH)
    doc = json.loads(json.dumps(to_jsonable(rep.to_dict())))
    assert doc["n_images"] == 1 and doc["total_events"] == 1
    conv = doc["layers"][1]
    assert conv["name"] == "conv" and conv["sites"]["weights"]["events"] == 1
    assert conv["sites"]["acc"]["headroom_bits"] == math.log2(2**15 / 2)
    text = rep.render()
    assert text.splitlines()[0].startswith("| layer | op | format | range seen | overflows")
    assert "| conv | conv2d | Q2.5 | [-1, 0] | 1 | weights | 33.3% | -0.6439 |" in text


def test_float_trace_has_no_events():
    t = Trace(executor="float", values={"x": np.ones(3)}, outputs={"x": np.ones(3)})
    rep = overflow_report(t)
    assert rep.total_events == 0 and rep.first_overflow() is None
    assert rep.layers["x"].headroom_bits == math.inf
