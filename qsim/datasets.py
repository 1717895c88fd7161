"""Where qsim finds the evaluation data (FDDB, WIDER FACE, kmodels, weights).

The images' licences forbid redistribution, so they never ship with qsim: they are read
from ``$QSIM_DATA`` or, in a source checkout, from ``../shared/data`` beside the repo.
"""
from __future__ import annotations

import os
from pathlib import Path

from qsim.errors import QsimError

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root(required: bool = True) -> Path | None:
    """The data folder: ``$QSIM_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("QSIM_DATA")
    candidates = [Path(env)] if env else [REPO_ROOT.parent / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path
    if required:
        where = env if env else str(candidates[0])
        raise QsimError(
            f"data folder not found at {where}; set QSIM_DATA to the folder holding "
            "fddb/, wider/, kmodels/, weights/"
        )
    return None


def data_path(*parts: str) -> Path:
    """A file or folder inside the data root; a clear error if it is missing."""
    root = data_root()
    path = root.joinpath(*parts)
    if not path.exists():
        raise QsimError(f"{path} not found in the data folder {root}")
    return path
