"""How big a fault run is: a small default for ``make test``, a long one on request.

``COUNTERSIGN_FAULTS_LONG=1`` runs the long version; ``COUNTERSIGN_FAULTS_SEED``
replays a schedule (the RNG seed is printed either way); ``COUNTERSIGN_FAULTS_RESULTS``
names the results JSON (default: a file in the system's temp directory).
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

LONG_ENV = "COUNTERSIGN_FAULTS_LONG"
SEED_ENV = "COUNTERSIGN_FAULTS_SEED"
RESULTS_ENV = "COUNTERSIGN_FAULTS_RESULTS"

#: Every run moves on within this many seconds of a restart (issue 10's target).
RECOVERY_TARGET = 60.0


@dataclass(frozen=True)
class FaultConfig:
    """The size and timing of one fault run.

    Attributes:
        name: ``short`` or ``long``.
        concurrency: Flows in flight at once (each loops create → decide).
        kills: Kills of each kind in one test.
        load_seconds: How long the load runs before and after the kills.
        kill_after: Range of seconds of load between a restart and the next kill.
        down_for: Range of seconds a killed process stays down.
        ttl_seconds: Confirmation TTL of every gated call. Every other
            setting (activity timeouts, heartbeats) is the product's default.
    """

    name: str
    concurrency: int
    kills: int
    load_seconds: float
    kill_after: tuple[float, float]
    down_for: tuple[float, float]
    ttl_seconds: float

    def environment(self) -> dict[str, str]:
        """The product settings this configuration changes, as environment variables."""
        return {"COUNTERSIGN_CONFIRMATION_TTL": f"{self.ttl_seconds:g}"}


# The CI default: one kill of each kind, a few flows.
SHORT = FaultConfig(
    name="short",
    concurrency=6,
    kills=1,
    load_seconds=4.0,
    kill_after=(2.0, 6.0),
    down_for=(0.5, 2.0),
    ttl_seconds=8.0,
)

LONG = FaultConfig(
    name="long",
    concurrency=16,
    kills=5,
    load_seconds=20.0,
    kill_after=(3.0, 15.0),
    down_for=(0.5, 5.0),
    ttl_seconds=20.0,
)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def current() -> FaultConfig:
    """The configuration the environment asks for."""
    return LONG if _flag(LONG_ENV) else SHORT


def seed() -> int:
    """The RNG seed of this session's schedules: ``COUNTERSIGN_FAULTS_SEED`` or a fresh one."""
    given = os.environ.get(SEED_ENV, "").strip()
    return int(given) if given else random.SystemRandom().randrange(1, 2**31)


def results_path(seed_value: int) -> Path:
    """Where the session writes its results JSON."""
    given = os.environ.get(RESULTS_ENV, "").strip()
    if given:
        return Path(given)
    return Path(tempfile.gettempdir()) / f"countersign-faults-{seed_value}.json"
