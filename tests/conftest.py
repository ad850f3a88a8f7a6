"""Shared test configuration: paths, the seed of random tests."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CONFORMANCE = SHARED / "conformance" / "bpf_conformance"


def seed_from_env(default=1):
    """The seed of random tests: BPFCORE_SEED, or a fixed default."""
    return int(os.environ.get("BPFCORE_SEED", default))


@pytest.fixture
def seed():
    """The seed for a random test; a failing test's report names it."""
    return seed_from_env()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        if report.failed and "seed" in getattr(item, "fixturenames", ()):
            report.sections.append(("seed", f"reproduce with BPFCORE_SEED={seed_from_env()}"))
