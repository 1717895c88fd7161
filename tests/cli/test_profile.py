"""`qsim profile`: per-layer ranges, integer bits, suggested plan file usable by run/compare."""
from __future__ import annotations

import json

import pytest

from qsim.cli import main
from qsim.fixed import QFormat
from qsim.plan import Plan

from .tiny import tiny  # noqa: F401  (session fixture)


def test_profile_writes_stats_plan_and_plot(tiny, capsys, tmp_path):
    paths = {k: tmp_path / v for k, v in (("json", "p.json"), ("plan", "plan.json"), ("plot", "p.png"))}
    code = main(["profile", str(tiny["fc"]), "--images", str(tiny["images"]), "--n", "3", "--margin-bits", "1",
                 "--json", str(paths["json"]), "--plan-out", str(paths["plan"]), "--plot", str(paths["plot"])])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "3 image(s), 16-bit words, activation margin 1 bit(s)" in out
    doc = json.loads(paths["json"].read_text())
    assert doc["qsim_profile"] == 1 and doc["n_images"] == 3 and doc["word_bits"] == 16
    layers = {r["name"]: r for r in doc["layers"]}
    head = layers["head"]
    assert head["op"] == "conv2d" and head["weights"]["count"] == 8 * 125
    act = head["act"]
    assert act["min"] <= act["percentiles"]["p1"] <= act["percentiles"]["p50"] <= act["percentiles"]["p99"] <= act["max"]
    # the suggestion: exactly int_bits + margin integer bits on activations, none on weights
    sug = QFormat.parse(head["suggested"]["act"])
    assert sug.word_bits == 16 and sug.int_bits == min(act["int_bits"] + 1, 15)
    assert QFormat.parse(head["suggested"]["weights"]).int_bits == head["weights"]["int_bits"]
    assert layers[next(iter(layers))]["suggested"]["act"] == "Q1.14"   # the [-1, 1] input, no margin
    # the plan file holds those formats and runs without a single activation overflow
    plan = Plan.load(paths["plan"])
    assert str(plan.for_node("head").act) == head["suggested"]["act"]
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG"
    run_json = tmp_path / "run.json"
    assert main(["run", str(tiny["fc"]), str(tiny["image"]), "--plan", str(paths["plan"]),
                 "--json", str(run_json)]) == 0
    run_doc = json.loads(run_json.read_text())
    for row in run_doc["overflow"]["layers"]:
        for site in ("requant", "act", "add", "input"):
            assert row["sites"].get(site, {"events": 0})["events"] == 0, (row["name"], site)
    capsys.readouterr()


def test_profile_8_bit(tiny, capsys, tmp_path):
    path = tmp_path / "p.json"
    assert main(["profile", str(tiny["fc"]), "--images", str(tiny["images"]), "--n", "1",
                 "--word-bits", "8", "--margin-bits", "0", "--json", str(path)]) == 0
    capsys.readouterr()
    for row in json.loads(path.read_text())["layers"]:
        if row["suggested"]:
            assert QFormat.parse(row["suggested"]["act"]).word_bits == 8


@pytest.mark.parametrize("argv_tail, pattern", [
    (["--images", "/nonexistent/dir"], "image folder /nonexistent/dir not found"),
    (["--images", "IMAGES", "--margin-bits", "-1"], "--margin-bits must be >= 0"),
    (["--images", "IMAGES", "--plan-out", "/nonexistent/dir/plan.json"], "folder /nonexistent/dir does not exist"),
])
def test_bad_input(tiny, capsys, argv_tail, pattern):
    import re

    argv = ["profile", str(tiny["fc"])] + [str(tiny["images"]) if a == "IMAGES" else a for a in argv_tail]
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qsim profile: error: ") and "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]
