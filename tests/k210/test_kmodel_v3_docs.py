"""docs/k210-v3.md: every command and code block runs, and its detections table is what the code computes."""
from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from test_kmodel_v3_real import v3_dir  # noqa: F401  (the fixture that finds the v3 files)

DOC = Path(__file__).resolve().parents[2] / "docs" / "k210-v3.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture
def doc_data(tmp_path, data_dir, v3_dir, monkeypatch):
    """A data folder holding the v3 files under kmodels/ (wherever the tests found them) and FDDB."""
    root = tmp_path / "data"
    (root / "kmodels").mkdir(parents=True)
    for f in Path(v3_dir).glob("*.kmodel"):
        (root / "kmodels" / f.name).symlink_to(f)
    (root / "fddb").symlink_to(Path(data_dir) / "fddb")
    monkeypatch.setenv("QSIM_DATA", str(root))
    monkeypatch.chdir(tmp_path)
    return root


def test_shell_commands_run(doc_data, capsys):
    import importlib.util

    from qsim.cli import main

    spec = importlib.util.spec_from_file_location("k210_v3_fddb", DOC.parents[1] / "bench" / "k210_v3_fddb.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    lines = [ln[2:] for block in _blocks("sh") for ln in block.splitlines() if ln.startswith("$ ")]
    assert len(lines) == 5
    for line in lines:
        argv = shlex.split(os.path.expandvars(line))
        if argv[:2] == ["qsim", "sweep"]:  # the same sweep on the first 6 pictures
            assert main(argv[1:] + ["--limit", "6", "--cache", "cache"]) == 0, line
            assert "| kmodel:detect.kmodel | k210 v3 |" in capsys.readouterr().out
        elif argv[0] == "qsim":
            assert main(argv[1:]) == 0, line
            assert "kmodel v3, 24 layers (k210_conv 23, dequantize 1)" in capsys.readouterr().out
        else:  # the FDDB bench: the same command on the first 6 pictures (the full run takes ~40 s)
            assert argv[:3] == ["PYTHONPATH=.", "python", "bench/k210_v3_fddb.py"], line
            assert bench.main(argv[3:] + ["--limit", "6"]) == 0
            assert '"ap_full_curve"' in capsys.readouterr().out
    assert np.load("out.npz")["output0"].shape == (9000,)


def test_python_blocks_run(doc_data, capsys):
    ns: dict = {}
    for code in _blocks("python"):
        exec(compile(code, str(DOC), "exec"), ns)
    out = capsys.readouterr().out
    assert "[[208.  74. 298. 200.]]" in out and "['person']" in out


def test_detections_table(doc_data):
    from qsim.facedet import region
    from qsim.facedet.boxes import iou_matrix
    from qsim.facedet.fddb import load_fddb
    from qsim.images import load_image

    rows = re.findall(r"^\| (2002/\S+) \| ([\d ]+) \| ([\d ]+) \| ([\d.]+) \| ([\d.]+) \|$", DOC.read_text(), re.M)
    assert len(rows) == 4
    images = {im.name: im for im in load_fddb().images}
    det = region.RegionDetector(doc_data / "kmodels" / "detect.kmodel")
    for name, gt, box, score, iou in rows:
        im = images[name]
        gt_box = np.array(gt.split(), float)
        k = int(np.argmin(np.abs(im.boxes - gt_box).sum(1)))
        assert np.abs(im.boxes[k] - gt_box).max() <= 0.5
        found = det(load_image(im.path))
        want = np.array(box.split(), float)
        j = int(np.argmin(np.abs(found.boxes - want).sum(1)))
        assert np.abs(found.boxes[j] - want).max() <= 0.5, name
        assert round(float(found.scores[j]), 3) == float(score), name
        assert round(float(iou_matrix(found.boxes[j:j + 1], im.boxes[k:k + 1])[0, 0]), 2) == float(iou), name
