"""`qsim run`: outputs, detections, per-layer overflow table, JSON schema, bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from qsim.cli import main

from .tiny import tiny  # noqa: F401  (session fixture)


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_run_fixed_prints_outputs_detections_and_layer_table(tiny, capsys, tmp_path):
    out_json = tmp_path / "run.json"
    code, out, err = _run(["run", str(tiny["fc"]), str(tiny["image"]), "--format", "Q4.11",
                           "--acc-bits", "32", "--json", str(out_json)], capsys)
    assert code == 0, err
    assert "executor fixed: full w=Q4.11" in out
    assert "| head | 1x16x16x125 |" in out           # 32x32 image, stride 2, as is (fully conv)
    assert "| layer | op | format | range seen | overflows |" in out
    doc = json.loads(out_json.read_text())
    assert doc["qsim_run"] == 1 and doc["executor"] == "fixed"
    assert doc["input_shape"] == [1, 32, 32, 3] and doc["image_hw"] == [32, 32]
    assert doc["plan"]["default"]["act"] == "Q4.11" and doc["plan"]["default"]["acc_bits"] == 32
    assert doc["outputs"][0]["name"] == "head" and doc["outputs"][0]["shape"] == [1, 16, 16, 125]
    assert isinstance(doc["detections"], list)
    for det in doc["detections"]:
        assert len(det["box"]) == 4 and 0.5 <= det["score"] <= 1.0
    layers = {row["name"]: row for row in doc["overflow"]["layers"]}
    assert layers["head"]["format"] == "Q4.11"
    assert set(layers["head"]) >= {"op", "range", "events", "worst_site", "worst_rate", "headroom_bits", "sites"}
    assert doc["overflow"]["total_events"] == sum(r["events"] for r in doc["overflow"]["layers"])


def test_narrow_format_overflows_and_is_reported(tiny, capsys, tmp_path):
    out_json = tmp_path / "run.json"
    code, out, err = _run(["run", str(tiny["fc"]), str(tiny["image"]), "--format", "Q0.7",
                           "--acc-bits", "16", "--json", str(out_json)], capsys)
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert doc["overflow"]["total_events"] > 0          # [-1, 1] images, BN'd activations up to 6
    first = next(r for r in doc["overflow"]["layers"] if r["events"])
    assert f"first at {first['name']}" in out
    assert first["headroom_bits"] == "-inf" or first["headroom_bits"] <= 0  # 1.0 -> code 128 > 127: 0 bits


def test_fixed_size_model_resizes_and_size_overrides(tiny, capsys, tmp_path):
    out_json = tmp_path / "r.json"
    assert main(["run", str(tiny["fixed"]), str(tiny["image"]), "--format", "fp32", "--json", str(out_json)]) == 0
    assert json.loads(out_json.read_text())["input_shape"] == [1, 24, 20, 3]
    assert main(["run", str(tiny["fc"]), str(tiny["image"]), "--format", "fp32", "--size", "20x12",
                 "--json", str(out_json)]) == 0
    doc = json.loads(out_json.read_text())
    assert doc["input_shape"] == [1, 20, 12, 3] and doc["plan"] is None and doc["executor"] == "float"
    capsys.readouterr()


def test_run_with_plan_file(tiny, capsys, tmp_path):
    from qsim.plan import Plan

    plan = tmp_path / "plan.json"
    Plan.per_layer({"head": {"act": "Q7.8"}}, default="Q3.12").save(plan)
    out_json = tmp_path / "r.json"
    code, out, err = _run(["run", str(tiny["fc"]), str(tiny["image"]), "--plan", str(plan),
                           "--json", str(out_json)], capsys)
    assert code == 0, err
    layers = {r["name"]: r for r in json.loads(out_json.read_text())["overflow"]["layers"]}
    assert layers["head"]["format"] == "Q7.8"


@pytest.mark.parametrize("case, pattern", [
    ("missing_image", "image file .*nope.png not found"),
    ("missing_model", "model file .*nope.h5 not found"),
    ("grey_model", "takes 1-channel images"),
    ("bad_format", "--format 'Q6.x'"),
    ("plan_unknown_layer", "unknown layer name.*'no_such_layer'"),
    ("corrupt_model", "corrupt.h5"),
    ("not_an_image", "cannot read image"),
])
def test_bad_input_is_one_line_exit_1(tiny, capsys, tmp_path, case, pattern):
    import re

    from qsim.plan import Plan

    model, image, extra = str(tiny["fc"]), str(tiny["image"]), ["--format", "Q6.9"]
    if case == "missing_image":
        image = str(tmp_path / "nope.png")
    elif case == "missing_model":
        model = str(tmp_path / "nope.h5")
    elif case == "grey_model":
        model = str(tiny["grey"])
    elif case == "bad_format":
        extra = ["--format", "Q6.x"]
    elif case == "plan_unknown_layer":
        Plan.per_layer({"no_such_layer": "Q2.13"}).save(tmp_path / "p.json")
        extra = ["--plan", str(tmp_path / "p.json")]
    elif case == "corrupt_model":
        model = str(tmp_path / "corrupt.h5")
        (tmp_path / "corrupt.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    elif case == "not_an_image":
        image = str(tmp_path / "text.png")
        (tmp_path / "text.png").write_text("not a png")
    code, out, err = _run(["run", model, image, *extra], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qsim run: error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in err


def test_command_line_entry_point_has_no_traceback(tiny, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "qsim", "run", str(tiny["grey"]), str(tiny["image"]),
                           "--format", "Q6.9"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "1-channel" in proc.stderr


def test_detections_are_in_image_pixels():
    from qsim.cli.run import detections

    out = np.full((1, 4, 4, 125), -10.0)
    out[0, 1, 2, 0] = 5.0  # one confident cell, template 0, zero deltas
    dets = detections(out, input_hw=(64, 64), image_hw=(128, 256))
    assert len(dets) == 1 and dets[0]["score"] == pytest.approx(1 / (1 + np.exp(-5.0)))
    from qsim.facedet.coding import decode

    boxes, _ = decode(out[0], stride=16)
    assert dets[0]["box"] == pytest.approx(list(boxes[0] * [4, 2, 4, 2]), abs=0.05)
    assert detections(np.zeros((1, 4, 4, 10)), (64, 64), (64, 64)) is None
