"""The fuzz tests' shared fixtures, and the count of examples tried at the end of the run."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.fuzz import budget, seeds
from tests.fuzz.harness import EmbeddedJob


@pytest.fixture(scope="session")
def embedded_job(tmp_path_factory):
    """The embedded job, its resources opened once for every fuzz test that runs the flow."""
    job = EmbeddedJob(tmp_path_factory.mktemp("fuzz-job"))
    yield job
    job.close()


@pytest.fixture(scope="session")
def pool(embedded_job) -> seeds.Pool:
    """Valid records to mutate: STAR conversations (UI feedback on their suggestions too) and the sample."""
    return seeds.build(embedded_job, start=datetime(2026, 4, 1, 9, 0, tzinfo=UTC))


def pytest_terminal_summary(terminalreporter) -> None:
    if not budget.COUNTS:
        return
    total = sum(budget.COUNTS.values())
    parts = ", ".join(f"{target} {n:,}" for target, n in sorted(budget.COUNTS.items()))
    terminalreporter.write_line(
        f"fuzz ({budget.PROFILE} profile, scale {budget.SCALE}, job scale {budget.JOB_SCALE}):"
        f" {total:,} examples "
        f"tried ({parts}) "
        f"in {time.monotonic() - budget.STARTED:.0f} s"
    )
    for path in budget.write_found():
        terminalreporter.write_line(f"fuzz: kept a failing case in {path}")
