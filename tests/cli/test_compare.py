"""`qsim compare`: per-layer error table, first layer below threshold, JSON, plot, bad input."""
from __future__ import annotations

import json
import math

import pytest

from qsim.cli import main

from .tiny import tiny  # noqa: F401  (session fixture)


def test_compare_fixed_vs_float_json_and_plot(tiny, capsys, tmp_path):
    out_json, out_png = tmp_path / "c.json", tmp_path / "c.png"
    code = main(["compare", str(tiny["fc"]), "--images", str(tiny["images"]), "--n", "2",
                 "--format", "Q5.10", "--sqnr-threshold", "200", "--json", str(out_json), "--plot", str(out_png)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "fixed vs float, 2 image(s)" in out
    assert "| layer | op | format | max abs | RMS | SQNR dB | > 1 LSB | overflows |" in out
    doc = json.loads(out_json.read_text())
    assert doc["qsim_compare"] == 1 and doc["reference"] == "float" and doc["test"] == "fixed"
    assert doc["n_images"] == 2 and len(doc["images"]) == 2 and doc["outputs"] == ["head"]
    assert doc["plan"]["default"]["act"] == "Q5.10"
    layers = doc["layers"]
    assert [r["name"] for r in layers][-1] == "head"
    for row in layers:
        assert set(row) == {"name", "op", "shape", "format", "n", "max_abs", "rms", "signal_rms",
                            "sqnr_db", "lsb", "over_1lsb", "nonfinite"}
        assert row["format"] == "Q5.10" and row["lsb"] == 2.0 ** -10
        assert 0.0 <= row["over_1lsb"] <= 1.0
    # input quantization error is at most half an LSB (round to nearest, no overflow in [-1, 1])
    assert layers[0]["op"] == "input" and layers[0]["max_abs"] <= 2.0 ** -11
    # a 200 dB threshold: the first layer with any error is reported
    assert doc["sqnr_threshold_db"] == 200
    assert doc["first_below_threshold"] == layers[0]["name"]
    assert f"first layer below 200 dB: {layers[0]['name']}" in out
    assert out_png.read_bytes()[:4] == b"\x89PNG"
    # the overflow counters of the quantized runs come along (none at Q5.10 on [-1, 1] inputs here)
    assert doc["overflow"]["n_images"] == 2
    assert f"overflow events in the fixed runs: {doc['overflow']['total_events']}" in out


def test_compare_shows_overflow_per_layer(tiny, capsys, tmp_path):
    path = tmp_path / "c.json"
    assert main(["compare", str(tiny["fc"]), "--images", str(tiny["images"]), "--n", "1",
                 "--format", "Q0.7", "--acc-bits", "16", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    doc = json.loads(path.read_text())
    events = {row["name"]: row["events"] for row in doc["overflow"]["layers"]}
    assert sum(events.values()) == doc["overflow"]["total_events"] > 0
    first = next(name for name, n in events.items() if n)
    assert f"(first at {first}, site " in out
    row = next(line for line in out.splitlines() if line.startswith(f"| {first} |"))
    assert row.rstrip(" |").endswith(str(events[first]))


def test_wider_format_is_closer_to_float(tiny, capsys, tmp_path):
    sqnr = {}
    for fmt in ("Q5.10", "Q9.22"):
        path = tmp_path / f"{fmt}.json"
        assert main(["compare", str(tiny["fc"]), "--images", str(tiny["images"]), "--n", "1",
                     "--format", fmt, "--acc-bits", "64", "--json", str(path)]) == 0
        sqnr[fmt] = json.loads(path.read_text())["layers"][-1]["sqnr_db"]
    capsys.readouterr()
    assert sqnr["Q9.22"] > sqnr["Q5.10"] + 30   # ~6 dB per extra fraction bit


def test_fp16_and_float_need_no_format_column(tiny, capsys, tmp_path):
    path = tmp_path / "f.json"
    assert main(["compare", str(tiny["fc"]), "--images", str(tiny["images"]), "--n", "1",
                 "--format", "fp16", "--json", str(path)]) == 0
    doc = json.loads(path.read_text())
    assert doc["test"] == "fp16" and all(r["format"] is None and r["over_1lsb"] is None for r in doc["layers"])
    assert main(["compare", str(tiny["fc"]), "--images", str(tiny["images"]), "--n", "1",
                 "--format", "fp32", "--json", str(path)]) == 0
    doc = json.loads(path.read_text())
    assert all(r["sqnr_db"] == "inf" and r["max_abs"] == 0 for r in doc["layers"])
    assert doc["first_below_threshold"] is None
    assert "every layer has SQNR >= 20 dB" in capsys.readouterr().out
    assert math.isinf(float(doc["layers"][0]["sqnr_db"]))


@pytest.mark.parametrize("case, pattern", [
    ("missing_folder", "image folder .*nowhere not found"),
    ("empty_folder", "no .jpg/.png images under"),
    ("grey_model", "takes 1-channel images"),
    ("plan_unknown_layer", "unknown layer name.*'ghost'"),
    ("narrow_acc", "layer '.*' field 'acc_bits'"),
])
def test_bad_input(tiny, capsys, tmp_path, case, pattern):
    import re

    from qsim.plan import Plan

    model, images, extra = str(tiny["fc"]), str(tiny["images"]), ["--format", "Q6.9"]
    if case == "missing_folder":
        images = str(tmp_path / "nowhere")
    elif case == "empty_folder":
        images = str(tiny["empty"])
    elif case == "grey_model":
        model = str(tiny["grey"])
    elif case == "plan_unknown_layer":
        Plan.per_layer({"ghost": "Q1.14"}).save(tmp_path / "p.json")
        extra = ["--plan", str(tmp_path / "p.json")]
    elif case == "narrow_acc":
        extra = ["--format", "Q6.9", "--acc-bits", "20"]
    code = main(["compare", model, "--images", images, *extra])
    err = capsys.readouterr().err
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qsim compare: error: ") and "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]
