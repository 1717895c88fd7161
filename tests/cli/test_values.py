"""Issue 17 friction: unchecked values are refused (argparse usage error, exit 2), foreign mode
names are accepted on the command line as documented."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qsim
from qsim.cli import main

MODEL = str(Path(qsim.__file__).parent / "assets" / "a98_alpha1.0.h5")


@pytest.mark.parametrize("argv, flag", [
    (["compare", MODEL, "--images", ".", "--format", "q9", "--sqnr-threshold", "nan"], "--sqnr-threshold"),
    (["sweep", MODEL, "--fddb-alpha", "-1"], "--fddb-alpha"),
    (["sweep", MODEL, "--fddb-beta", "inf"], "--fddb-beta"),
    (["sweep", MODEL, "--nms-iou", "1.5"], "--nms-iou"),
    (["sweep", MODEL, "--match-iou", "0"], "--match-iou"),
    (["run", MODEL, "x.png", "--format", "q9", "--rounding", "sideways"], "--rounding"),
])
def test_bad_values_are_usage_errors(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err


@pytest.mark.parametrize("margin", ["100", "16", "-1"])
def test_margin_bits_beyond_the_word_is_an_error(tmp_path, capsys, margin):
    """--margin-bits 100 was silently clamped; it is an error naming the flag before any work."""
    assert main(["profile", MODEL, "--images", str(tmp_path), "--margin-bits", margin]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("qsim profile: error: --margin-bits") and "\n" not in err


def test_foreign_rounding_names_accepted(tmp_path, capsys):
    src = tmp_path / "t.npy"
    np.save(src, np.array([0.5, 0.25, 1 / 3], np.float32))
    assert main(["quantize", str(src), "--format", "Q2.5", "--rounding", "AP_RND_CONV", "--overflow", "AP_SAT"]) == 0
    assert "rounding half_even, overflow saturate" in capsys.readouterr().out
    from qsim.cli import build_parser

    args = build_parser().parse_args(["run", MODEL, "x.png", "--format", "q9", "--rounding", "AP_RND_CONV"])
    assert args.rounding == "half_even"
    args = build_parser().parse_args(["sweep", MODEL, "--rounding", "AP_TRN"])
    assert args.rounding == "floor"
