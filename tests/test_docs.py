"""Every ```python block of docs/*.md runs, in page order, as the page shows it.

Blocks of one page share a namespace (a later block may use an earlier one's names) and run
in a fresh temporary working directory, so files they write (``plan.json``) land there. A
block preceded by the line ``<!-- no-test -->`` is skipped (for a block that cannot run in
CI, e.g. one that needs a cluster; say why next to it), and so is a block named by a marker
line such as ``<!-- conv1x1.py -->``: a test of its own extracts and runs it with what it
needs (e.g. the C library it wraps: tests/testing/test_c_kernel.py).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)^```", re.S | re.M)
SKIP_MARK = "<!-- no-test -->"


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line number, code, skipped)`` of each ```python block of a Markdown text."""
    out = []
    for m in BLOCK.finditer("\n" + text):
        line = text.count("\n", 0, max(m.start("code") - 1, 0)) + 1
        before = m.group("before").strip()
        named = re.fullmatch(r"<!-- [\w.-]+\.py -->", before) is not None
        out.append((line, m.group("code"), before == SKIP_MARK or named))
    return out


def test_block_finder_sees_blocks_and_skip_marks():
    text = ("intro\n```python\nx = 1\n```\n<!-- no-test -->\n```python\nraise SystemExit\n```\n```sh\nls\n```\n"
            "<!-- ex.py -->\n```python\nlib.f()\n```\n")
    assert [(code, skip) for _, code, skip in python_blocks(text)] == [("x = 1\n", False),
                                                                      ("raise SystemExit\n", True),
                                                                      ("lib.f()\n", True)]


PAGES = sorted(DOCS.glob("*.md"))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_python_blocks_of_page_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for line, code, skipped in python_blocks(page.read_text(encoding="utf-8")):
        if skipped:
            continue
        exec(compile(code, f"{page}:{line}", "exec"), namespace)
