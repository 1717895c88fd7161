"""The paths a user hands the CLI verbs: inputs read and outputs written with one-line errors.

Output flags (``--json OUT``, ``--plot OUT.png``, ``--save-outputs OUT.npz``, ``--out DIR``,
``--cache DIR``) are checked by `check_outputs` *before* a verb starts its work, so a typo in
a folder name costs a second, not a two-minute sweep, and gives ``qsim VERB: error: --json
/nonexistent/x.json: folder /nonexistent does not exist`` (exit 1) instead of a traceback.
Writes that still fail later (disk full, permissions changed) are `OSError`s that
`qsim.cli.main` reports the same way.

Inputs: `read_npy` reads a ``.npy`` without pickles and names the flag and the file for an
empty, truncated or foreign file. `quantized_model_suffix` tells a model file that carries its
own quantization (``.tflite``, ``.kmodel``) from a Keras model that needs ``--format``/``--plan``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from qsim.errors import InputError, PlanError

QUANTIZED_SUFFIXES = (".tflite", ".kmodel")


def check_input_file(path: str | os.PathLike, what: str) -> Path:
    """`path` as a Path if it is an existing file; `InputError` saying "not found" or "is a directory"."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{what} {p} is a directory, expected a file")
    if not p.is_file():
        raise InputError(f"{what} {p} not found")
    return p


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """`path` as a Path if a file can be written there; `InputError` naming `flag` otherwise."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{flag} {p}: is a directory, expected a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise InputError(f"{flag} {p}: folder {parent} does not exist")
    if not parent.is_dir():
        raise InputError(f"{flag} {p}: {parent} is a file, not a folder")
    if p.exists() and not os.access(p, os.W_OK) or not p.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {p}: not writable")
    return p


def check_output_dir(path: str | os.PathLike, flag: str, create: bool = True) -> Path:
    """`path` as a writable folder (created with its parents when `create`); `InputError` otherwise."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{flag} {p}: is a file, expected a folder")
    if create:
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{flag} {p}: cannot create the folder ({exc.strerror or exc})") from None
    elif not p.exists():
        return p
    if not os.access(p, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {p}: folder not writable")
    return p


def check_outputs(args: Any, files: tuple[str, ...] = (), dirs: tuple[str, ...] = ()) -> None:
    """Check every output flag of a parsed command line that was given (``"--json"`` -> args.json)."""
    for flag in files:
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value:
            check_output_file(value, flag)
    for flag in dirs:
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value:
            check_output_dir(value, flag)


def write_json_file(doc: Any, path: str | os.PathLike, flag: str = "--json") -> Path:
    """Write `doc` as indented JSON; non-finite floats become ``"inf"``/``"-inf"``/``"nan"``."""
    from qsim.analysis.report import to_jsonable

    p = check_output_file(path, flag)
    text = json.dumps(to_jsonable(doc), indent=1, allow_nan=False) + "\n"
    try:
        p.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{flag} {p}: cannot write ({exc.strerror or exc})") from None
    return p


def write_result_files(result: Any, args: Any) -> None:
    """``--json OUT`` (``result.to_dict()``) and ``--plot OUT.png`` (``result.plot``) when asked."""
    import sys

    if getattr(args, "json", None):
        write_json_file(result.to_dict(), args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    if getattr(args, "plot", None):
        result.plot(args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)


def read_npy(path: str | os.PathLike, flag: str) -> np.ndarray:
    """A ``.npy`` array (no pickles); `InputError` naming `flag` and the file for anything else."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{flag} {p}: is a directory, expected a .npy file")
    if not p.is_file():
        raise InputError(f"{flag} {p}: no such file")
    if p.stat().st_size == 0:
        raise InputError(f"{flag} {p}: empty file (0 bytes), expected a .npy array")
    try:
        arr = np.load(p, allow_pickle=False)
    except Exception as exc:
        # numpy parses the header with ast.literal_eval/tokenize: a corrupt header raises
        # SyntaxError, TokenError, ValueError, EOFError ... depending on where the damage is
        raise InputError(f"{flag} {p}: not a readable .npy array ({type(exc).__name__}: {exc})") from None
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise InputError(f"{flag} {p}: a .npz archive, expected a single .npy array")
    return arr


def quantized_model_suffix(args: Any) -> str | None:
    """``.tflite`` / ``.kmodel`` for a model file that carries its own quantization (checked to
    exist, refused with ``--format`` / ``--plan``); None for a Keras model, which needs one of them."""
    suffix = Path(args.model).suffix.lower()
    given = bool(getattr(args, "format", None) or getattr(args, "plan", None))
    if suffix not in QUANTIZED_SUFFIXES:
        if not given:
            raise PlanError(f"{args.model}: a Keras model needs a number format (--format Q6.9 or --plan P)")
        return None
    check_input_file(args.model, "model file")
    if given:
        raise PlanError(f"{args.model}: --format / --plan are for Keras models; a {suffix} file carries its "
                        "own quantization")
    return suffix
