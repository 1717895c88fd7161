"""The worked example of docs/device.md: a C fixed-point 1x1 convolution, compiled with the
system C compiler, wrapped with ctypes and fuzzed against qsim by `assert_same_codes`.

The C and Python texts are read from the docs page (between ``<!-- conv1x1.c -->`` and
``<!-- conv1x1.py -->`` markers), so the page cannot drift from what is tested.
(a) with the planted rounding bug (floor instead of half_up) the helper fails and reports a
shrunk input; (b) as written, it passes.
"""
from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from qsim.testing import CodesMismatch, assert_same_codes

DOC = Path(__file__).resolve().parents[2] / "docs" / "device.md"
ROUNDING_LINE = "(acc + half) >> shift"


def doc_block(tag: str) -> str:
    """The fenced code block between ``<!-- tag -->`` and ``<!-- /tag -->`` in docs/device.md."""
    text = DOC.read_text(encoding="utf-8")
    m = re.search(rf"<!-- {re.escape(tag)} -->\s*```\w*\n(.*?)```\s*<!-- /{re.escape(tag)} -->", text, re.S)
    assert m, f"{DOC}: no code block marked {tag}"
    return m.group(1)


def compile_c(source: str, tmp_path: Path, name: str, werror: bool = True) -> ctypes.CDLL:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    assert cc, "a C compiler (cc/gcc/clang) is needed for this test (present on CI machines)"
    src, lib = tmp_path / f"{name}.c", tmp_path / f"lib{name}.so"
    src.write_text(source, encoding="utf-8")
    flags = ["-Wall", "-Werror"] if werror else []  # the planted bug leaves `half` unused
    done = subprocess.run([cc, "-O2", "-std=c99", *flags, "-shared", "-fPIC", str(src), "-o", str(lib)],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"{cc} failed on {src}:\n{done.stderr}"
    dll = ctypes.CDLL(str(lib))
    dll.conv1x1_q.restype = None
    dll.conv1x1_q.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int] * 5
    return dll


def ptr(a: np.ndarray):
    # the array must outlive the call: keep it referenced by the caller's expression
    assert a.flags.c_contiguous
    return a.ctypes.data_as(ctypes.c_void_p)


def run_doc_example(lib) -> None:
    """Execute the docs' Python block with `lib` bound (it defines c_conv1x1 and fuzzes it)."""
    code = doc_block("conv1x1.py")
    namespace = {"np": np, "lib": lib, "ptr": ptr, "assert_same_codes": _bounded}
    exec(compile(code, str(DOC), "exec"), namespace)


def _bounded(candidate, op, **kw):
    # fixed seed and budget: the test is deterministic and quick
    assert_same_codes(candidate, op, max_examples=150, seed=16, **kw)


def test_c_kernel_with_a_planted_rounding_bug_fails_minimally(tmp_path):
    source = doc_block("conv1x1.c")
    assert source.count(ROUNDING_LINE) == 1
    lib = compile_c(source.replace(ROUNDING_LINE, "acc >> shift"), tmp_path, "conv1x1_bug", werror=False)
    with pytest.raises(CodesMismatch) as info:
        run_doc_example(lib)
    err = info.value
    # shrunk to one pixel, one input and one output channel; floor is one code below half_up
    assert err.case["x"].shape == (1, 1, 1, 1) and err.case["w"].shape == (1, 1, 1, 1)
    assert err.index == (0, 0, 0, 0)
    assert int(err.expected[err.index]) == int(np.asarray(err.got).reshape(err.expected.shape)[err.index]) + 1
    text = str(err)
    assert "conv1x1 kernel at index (0, 0, 0, 0)" in text
    assert "in Q3.12, weights Q0.15, b Q3.12, out Q3.12" in text and "rounding half_up" in text


def test_c_kernel_as_documented_matches_qsim(tmp_path):
    run_doc_example(compile_c(doc_block("conv1x1.c"), tmp_path, "conv1x1"))
