"""Rendering of analysis results: Markdown tables for people, JSON for machines.

Contract:

* `markdown_table` renders rows of already-chosen cells; numbers go through `fmt_num`
  so every report prints them the same way (4 significant digits, ``inf`` spelled out).
* `to_jsonable` turns dataclasses, NumPy scalars/arrays, `QFormat`\\ s, enums and paths
  into plain JSON types. JSON has no infinities: a non-finite float becomes the string
  ``"inf"``, ``"-inf"`` or ``"nan"`` (e.g. the SQNR of an exact layer is ``"inf"``);
  `from_json_float` reads those back.
* `write_json` writes UTF-8, indented, keys in insertion order, with a trailing newline.

>>> print(markdown_table(["layer", "SQNR dB"], [["conv", 41.23456], ["relu", float("inf")]]))
| layer | SQNR dB |
|:--|--:|
| conv | 41.23 |
| relu | inf |
"""
from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qsim.errors import QsimError


def fmt_num(value: Any, digits: int = 4) -> str:
    """A number as a short string: ``digits`` significant digits, ``-`` for None.

    >>> fmt_num(0.000123456), fmt_num(1234567.0), fmt_num(3), fmt_num(None), fmt_num(-math.inf)
    ('0.0001235', '1.235e+06', '3', '-', '-inf')
    """
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v == 0:
            return "0"
        return f"{v:.{digits}g}"
    return str(value)


def fmt_pct(share: float | None, digits: int = 3) -> str:
    """A share in [0, 1] as a percentage; tiny non-zero shares stay visible.

    >>> fmt_pct(0.5), fmt_pct(0.0), fmt_pct(1e-7), fmt_pct(None)
    ('50%', '0%', '1e-05%', '-')
    """
    if share is None:
        return "-"
    return f"{fmt_num(100.0 * float(share), digits)}%"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                   align: str | None = None) -> str:
    """A GitHub-flavoured Markdown table.

    Args:
        headers: column titles.
        rows: cells; non-strings go through `fmt_num`.
        align: one letter per column, ``l`` or ``r``; default: first column left, others right.
    """
    if align is None:
        align = "l" + "r" * (len(headers) - 1)
    if len(align) != len(headers):
        raise QsimError(f"markdown_table: {len(headers)} headers but align={align!r}")
    rule = ["--:" if a == "r" else ":--" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(rule) + "|"]
    for row in rows:
        if len(row) != len(headers):
            raise QsimError(f"markdown_table: row {row!r} has {len(row)} cells, expected {len(headers)}")
        cells = [c if isinstance(c, str) else fmt_num(c) for c in row]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types for `obj` (see the module docstring for the rules).

    >>> to_jsonable({"sqnr_db": float("inf"), "n": np.int64(3), "x": np.array([0.5, 1.0])})
    {'sqnr_db': 'inf', 'n': 3, 'x': [0.5, 1.0]}
    """
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if math.isfinite(v):
            return v
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if type(obj).__name__ == "QFormat":
            return str(obj)
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return str(obj)


def from_json_float(value: Any) -> float | None:
    """Inverse of `to_jsonable` for one float (``"inf"`` -> ``math.inf``; None stays None).

    >>> from_json_float("inf"), from_json_float(2.5), from_json_float(None)
    (inf, 2.5, None)
    """
    if value is None:
        return None
    return float(value)


def write_json(data: Any, path: str | Path) -> Path:
    """Write `data` as indented JSON (via `to_jsonable`); a clear error if the folder is missing."""
    path = Path(path)
    if path.parent and not path.parent.is_dir():
        raise QsimError(f"cannot write {path}: folder {path.parent} does not exist")
    text = json.dumps(to_jsonable(data), indent=2, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path
