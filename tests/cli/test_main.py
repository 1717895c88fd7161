"""The `qsim` entry point: registry, help, errors, closed pipes."""
from __future__ import annotations

import subprocess
import sys

from qsim.cli import COMMANDS, build_parser, main


def test_every_registered_verb_has_a_module_with_the_cli_contract():
    import importlib

    for verb, (module_name, _help) in COMMANDS.items():
        module = importlib.import_module(module_name)
        assert callable(module.add_arguments) and callable(module.run), verb


def test_no_command_prints_help_and_returns_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_help_lists_every_verb():
    text = build_parser().format_help()
    for verb in COMMANDS:
        assert verb in text


def test_qsim_error_is_one_line_and_exit_1(tmp_path):
    bad = tmp_path / "model.h5"
    bad.write_bytes(b"not an hdf5 file")
    proc = subprocess.run([sys.executable, "-m", "qsim", "inspect", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("qsim inspect: error:") and str(bad) in proc.stderr


def test_closed_pipe_is_not_a_traceback():
    # `qsim --help`-sized output is too small to fill a pipe; `inspect` of the bundled model is not.
    from pathlib import Path

    import qsim

    model = Path(qsim.__file__).parent / "assets" / "a98_alpha1.0.h5"
    proc = subprocess.run(
        f"{sys.executable} -m qsim inspect {model} --size 64x64 | head -n 1",
        shell=True, capture_output=True, text=True,
    )
    assert proc.returncode == 0
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_python_api_has_the_cli_verbs():
    import qsim
    from qsim.analysis import compare_model, profile_model
    from qsim.facedet.sweep import sweep
    from qsim.plan import Plan
    from qsim.runtime import prepare, run

    assert qsim.run is run and qsim.prepare is prepare and qsim.Plan is Plan
    assert qsim.compare is compare_model and qsim.profile is profile_model and qsim.sweep is sweep
    assert set(qsim._LAZY) <= set(qsim.__all__)
    import pytest

    with pytest.raises(AttributeError):
        qsim.no_such_verb  # noqa: B018


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    """Issue 17: Ctrl-C printed chained tracebacks."""
    import qsim.cli.inspect as inspect_verb

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(inspect_verb, "run", interrupted)
    assert main(["inspect", "x.h5"]) == 130
    err = capsys.readouterr().err
    assert err == "qsim inspect: interrupted\n"


def test_first_compile_is_announced(monkeypatch, tmp_path, capsys):
    """Issue 17: the first ~8 s of Numba compilation printed nothing."""
    from qsim import cli

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert cli.numba_cache_is_empty()
    assert main(["run", "missing.h5", "missing.png", "--format", "q9"]) == 1
    assert "compiling kernels" in capsys.readouterr().err
    (tmp_path / "k.nbi").write_bytes(b"")
    assert not cli.numba_cache_is_empty()
