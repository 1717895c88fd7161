"""docs/face-detection.md: its Python example and its quick command run as written."""
import re
import shlex
from pathlib import Path

from qsim.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "face-detection.md"


def test_python_example_runs(data_dir, capsys, monkeypatch):
    monkeypatch.setenv("QSIM_DATA", str(data_dir))
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {})
    assert capsys.readouterr().out.strip() == "[[254.5, 172.7, 345.5, 263.7]]"
    assert Path("/tmp/fddb-box-rules.png").stat().st_size > 0


def test_quick_command_runs(data_dir, capsys, monkeypatch):
    monkeypatch.setenv("QSIM_DATA", str(data_dir))
    line = next(l.strip() for l in DOC.read_text().splitlines() if "--limit 2 --no-cache" in l)
    argv = shlex.split(line)
    assert argv[0] == "qsim"
    assert main(argv[1:]) == 0
    out = capsys.readouterr().out
    assert "| vj | - |" in out and re.search(r"\[\d\.\d{3}-\d\.\d{3}\]", out)
