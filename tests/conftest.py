"""Shared test setup.

* Tests that need TensorFlow, onnxruntime or ../shared/data skip on a user's machine that
  lacks them, but in CI (CI=true) any skip fails the run: see `pytest_sessionfinish`.
* Hypothesis: no deadline (Numba compiles on first call); the "ci" profile is the default.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=40)
settings.register_profile("thorough", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _need(condition: bool, why: str) -> None:
    if not condition:
        if IN_CI:
            pytest.fail(f"required in CI but missing: {why}")
        pytest.skip(why)


@pytest.fixture(scope="session")
def data_dir():
    """Path to ../shared/data (or $QSIM_DATA); skips off-CI when absent."""
    from qsim.datasets import data_root

    root = data_root(required=False)
    _need(root is not None, "evaluation data (../shared/data or $QSIM_DATA)")
    return root


@pytest.fixture(scope="session")
def tf():
    """TensorFlow, imported lazily; skips off-CI when not installed."""
    try:
        import tensorflow as tf_mod  # noqa: F401
    except ImportError:
        tf_mod = None
    _need(tf_mod is not None, "tensorflow")
    return tf_mod


def pytest_sessionfinish(session, exitstatus):
    """In CI a skipped test is a failure: nothing may silently go unverified."""
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"CI: {skipped} test(s) skipped; skips are failures in CI", red=True)
        session.exitstatus = 1
