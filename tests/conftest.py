"""Shared test setup.

* Tests that need TensorFlow, onnxruntime or ../shared/data skip on a user's machine that
  lacks them, but in CI (CI=true) any skip fails the run: see `pytest_sessionfinish`.
* Hypothesis: no deadline (Numba compiles on first call); the "ci" profile is the default.
  In CI the seed is fixed and printed in the header (``hypothesis seed: N``): ``$QSIM_HYPOTHESIS_SEED``
  if set, else the day's date (YYYYMMDD), so the examples rotate daily yet a failing day is
  reproduced with ``QSIM_HYPOTHESIS_SEED=N make test`` or ``pytest --hypothesis-seed=N``; hypothesis
  prints the falsifying example and a ``@reproduce_failure`` line too. See docs/testing.md.
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
SEED_ENV = "QSIM_HYPOTHESIS_SEED"


def ci_hypothesis_seed() -> int | None:
    """The seed CI runs hypothesis with: $QSIM_HYPOTHESIS_SEED, else today's YYYYMMDD (None off CI)."""
    text = os.environ.get(SEED_ENV, "").strip()
    if text:
        return int(text)
    if not IN_CI:
        return None
    import datetime

    return int(datetime.datetime.now(datetime.UTC).strftime("%Y%m%d"))


def pytest_configure(config):
    seed = ci_hypothesis_seed()
    # --hypothesis-seed on the command line wins; the env/date seed fills it in otherwise
    if seed is not None and config.getoption("hypothesis_seed", None) is None:
        config.option.hypothesis_seed = seed
    # failures print the reproduction (`@reproduce_failure`) as well as the falsifying example
    settings.register_profile("_ci_seeded", settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci")),
                              print_blob=True)
    settings.load_profile("_ci_seeded")


def pytest_report_header(config):
    return [_seed_header(config), *_v3_header()]


def _seed_header(config) -> str:
    seed = config.getoption("hypothesis_seed", None)
    if seed is None:
        return "hypothesis seed: random (fix it with QSIM_HYPOTHESIS_SEED=N or --hypothesis-seed=N)"
    source = (f"${SEED_ENV}" if os.environ.get(SEED_ENV, "").strip()
              else "the date, CI" if IN_CI else "--hypothesis-seed")
    return f"hypothesis seed: {seed} (from {source}); reproduce with QSIM_HYPOTHESIS_SEED={seed}"


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
        import tensorflow as tf_mod
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


# --- the public kmodel v3 files (issue 12): vendor data that shared/data does not hold yet -----
V3_MODELS = ("detect.kmodel", "yolo.kmodel", "detect_5.kmodel", "detect_9.kmodel")
V3_TESTS = ("test_kmodel_v3_real.py", "test_kmodel_v3_docs.py")


def _v3_dir():
    from pathlib import Path

    from qsim.datasets import data_root

    env = os.environ.get("QSIM_KMODELS_V3")
    root = data_root(required=False)
    d = Path(env) if env else (root / "kmodels" if root is not None else None)
    return d if d is not None and all((d / n).is_file() for n in V3_MODELS) else None


def pytest_ignore_collect(collection_path, config):
    """The tests on the vendor's v3 files are collected only where the files are (they are
    vendor data no repo may ship; shared/data must provide them): the header says so."""
    return collection_path.name in V3_TESTS and _v3_dir() is None


def _v3_header() -> list[str]:
    if _v3_dir() is None:
        return ["kmodel v3 vendor files absent ($QSIM_KMODELS_V3 or <data>/kmodels/): "
                f"{', '.join(V3_TESTS)} not collected (docs/k210-v3.md)"]
    return []
