"""Fixtures of the face-detection tests."""
from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def viola_jones():
    """A `ViolaJones` detector; needs OpenCV 4.x (skips off-CI without it, fails in CI)."""
    from qsim.errors import QsimError
    from qsim.facedet.viola_jones import ViolaJones

    try:
        return ViolaJones()
    except QsimError as exc:
        if IN_CI:
            pytest.fail(f"required in CI but missing: {exc}")
        pytest.skip(str(exc))
