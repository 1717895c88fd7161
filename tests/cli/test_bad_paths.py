"""Issue 17 #5, #6, #9: bad tensors, empty .npy files and unwritable output paths are one line, exit 1.

Every verb's output flags are tried with a missing folder, a file where a folder is expected
and a folder where a file is expected; the error must come before the verb's work and name
the flag.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import qsim
from qsim.cli import main

MODEL = str(Path(qsim.__file__).parent / "assets" / "a98_alpha1.0.h5")


def _one_line_error(capsys, verb: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.startswith(f"qsim {verb}: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_quantize_json_with_infinite_values(tmp_path, capsys):
    """#5: ±Inf in the tensor: the table prints and the JSON is written (infinities as strings)."""
    arr = np.array([1.0, np.inf, -np.inf, 0.5], np.float32)
    src = tmp_path / "t.npy"
    np.save(src, arr)
    out = tmp_path / "r.json"
    assert main(["quantize", str(src), "--format", "Q2.5", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    t = doc["formats"][0]["tensors"][0]
    assert t["max"] == "inf" and t["min"] == "-inf"


@pytest.mark.parametrize("verb_args", [
    lambda npy: ["quantize", npy],
    lambda npy: ["k210", "KMODEL", "--input", npy],
])
@pytest.mark.parametrize("content", [b"", b"\x93NUMPY\x01\x00", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran"])
def test_empty_or_truncated_npy(tmp_path, capsys, data_dir, verb_args, content):
    """#6: a zero-byte (or truncated-header) .npy is an error naming the file, not an EOFError."""
    npy = tmp_path / "x.npy"
    npy.write_bytes(content)
    argv = [a.replace("KMODEL", str(data_dir / "kmodels" / "slim-320.kmodel")) for a in verb_args(str(npy))]
    assert main(argv) == 1
    assert "x.npy" in _one_line_error(capsys, argv[0])


def _bad_file_targets(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return {"missing folder": str(tmp_path / "nonexistent" / "x.out"),
            "under a file": str(a_file / "x.out"),
            "a folder": str(tmp_path)}


def _bad_dir_targets(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return {"a file": str(a_file), "under a file": str(a_file / "sub")}


FILE_FLAGS = [
    ("inspect", lambda: [MODEL, "--size", "64x64"], "--json"),
    ("run", lambda: [MODEL, "IMAGE", "--format", "q9"], "--json"),
    ("compare", lambda: [MODEL, "--images", "IMAGES", "--format", "q9"], "--json"),
    ("compare", lambda: [MODEL, "--images", "IMAGES", "--format", "q9"], "--plot"),
    ("profile", lambda: [MODEL, "--images", "IMAGES"], "--json"),
    ("profile", lambda: [MODEL, "--images", "IMAGES"], "--plot"),
    ("profile", lambda: [MODEL, "--images", "IMAGES"], "--plan-out"),
    ("sweep", lambda: [MODEL, "--limit", "1"], "--json"),
    ("sweep", lambda: [MODEL, "--limit", "1"], "--plot"),
    ("quantize", lambda: ["NPY"], "--json"),
    ("k210", lambda: ["KMODEL", "--input", "RAW"], "--json"),
    ("k210", lambda: ["KMODEL", "--input", "RAW"], "--save-outputs"),
]


def _fill(args, tmp_path, data_dir):
    img_dir = tmp_path / "imgs"
    img_dir.mkdir(exist_ok=True)
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img_dir / "a.png")
    npy = tmp_path / "t.npy"
    np.save(npy, np.ones(4, np.float32))
    raw = tmp_path / "raw.npy"
    np.save(raw, np.zeros((1, 3, 240, 320), np.uint8))
    sub = {"IMAGE": str(img_dir / "a.png"), "IMAGES": str(img_dir), "NPY": str(npy), "RAW": str(raw),
           "KMODEL": str(data_dir / "kmodels" / "slim-320.kmodel")}
    return [sub.get(a, a) for a in args]


@pytest.mark.parametrize("verb, base, flag", FILE_FLAGS, ids=[f"{v}{f}" for v, _, f in FILE_FLAGS])
def test_unwritable_output_file(tmp_path, capsys, data_dir, verb, base, flag):
    """#9: every output-file flag of every verb."""
    for why, target in _bad_file_targets(tmp_path).items():
        argv = [verb, *_fill(base(), tmp_path, data_dir), flag, target]
        assert main(argv) == 1, why
        line = _one_line_error(capsys, verb)
        assert flag in line and target in line, (why, line)


@pytest.mark.parametrize("verb, base, flag", [
    ("demo", lambda: ["--no-k210"], "--out"),
    ("sweep", lambda: [MODEL, "--limit", "1", "--formats", "fp32"], "--cache"),
])
def test_unwritable_output_folder(tmp_path, capsys, data_dir, verb, base, flag):
    for why, target in _bad_dir_targets(tmp_path).items():
        argv = [verb, *_fill(base(), tmp_path, data_dir), flag, target]
        assert main(argv) == 1, why
        line = _one_line_error(capsys, verb)
        assert flag in line and target in line, (why, line)
