"""Fixtures of the fault suite: the session's seed and its results file."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator

import pytest

from tests.faults import config
from tests.faults.results import Results, table

_written: list[Results] = []


@pytest.fixture(scope="session")
def fault_seed() -> int:
    """The RNG seed of every schedule in this session (printed, and in the results)."""
    value = config.seed()
    sys.stderr.write(f"\nfault suite: seed {value} ({config.SEED_ENV}={value} replays it)\n")
    return value


@pytest.fixture(scope="session")
def fault_results(fault_seed: int) -> Iterator[Results]:
    """The session's results file, rewritten after each test."""
    results = Results(
        path=config.results_path(fault_seed),
        seed=fault_seed,
        config=config.current(),
        command=shlex.join(sys.argv),
    )
    yield results
    if results.verdicts:
        _written.append(results)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures and where the results file is."""
    for results in _written:
        terminalreporter.section("fault injection")
        terminalreporter.write_line(table(results.as_json()))
        terminalreporter.write_line(f"results: {results.path}")
