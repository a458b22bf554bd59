"""One fault run: start the stack, load it, kill a part at random moments, verify.

The schedule (when to kill, how long to stay down) comes from a seeded RNG;
the RNG seed is printed and written to the results, so a failing schedule can be
run again (``COUNTERSIGN_FAULTS_SEED``), as closely as real processes allow.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from tests.faults.config import RECOVERY_TARGET, FaultConfig
from tests.faults.load import Load
from tests.faults.stack import FaultStack, Part, poll_until
from tests.faults.verify import Kill, Verdict, running_count, verify
from tests.scripted_openai import ScriptedModel

logger = logging.getLogger("tests.faults")

# Past the TTL, a run needs a model turn or two to close; generous, it is a bound.
CLOSE_MARGIN = 90.0
ACK_WITHIN = 120.0
LOAD_STOP_WITHIN = 300.0


class KillKind(StrEnum):
    """What a kill takes down."""

    WORKER = "worker"
    API = "api"
    TEMPORAL = "temporal"
    ALL = "all"

    @property
    def parts(self) -> Sequence[Part]:
        """The processes it kills."""
        if self is KillKind.ALL:
            return (Part.TEMPORAL, Part.WORKER, Part.API)
        return (Part(self.value),)


async def _kill_once(
    stack: FaultStack,
    load: Load,
    kind: KillKind,
    rng: random.Random,
    config: FaultConfig,
    since: float,
) -> Kill:
    # Strike under load: after at least one decision went through since the
    # last restart, so acknowledged decisions exist to be checked.
    await poll_until(
        lambda: _acked_since(load, since),
        within=ACK_WITHIN,
        what="a decision acknowledged under load",
    )
    if kind is KillKind.ALL:
        # Down long enough for a paused call's TTL to fall due meanwhile: its
        # timer must fire once the stack is back.
        await poll_until(
            lambda: _expiry_ahead(load, 1.0),
            within=config.ttl_seconds * 4,
            what="a paused call nobody will answer",
        )
    load.hold()
    killed_mono = time.monotonic()
    killed_at = datetime.now(UTC)
    await stack.kill(kind.parts)
    logger.warning("killed %s (%s)", kind, ", ".join(kind.parts))
    # How long it stays down is part of the schedule, not a synchronisation.
    await asyncio.sleep(rng.uniform(*config.down_for))
    if kind is KillKind.ALL:
        due = [c.expires_at for c in load.pending_expiries() if c.expires_at > killed_at]
        if due:
            await poll_until(
                lambda: _now_past(due[0]),
                within=config.ttl_seconds + 5,
                what="a TTL to fall due while everything is down",
            )
    restart_mono = time.monotonic()
    kill = Kill(
        kind=kind.value,
        killed_at=killed_at,
        restarted_at=datetime.now(UTC),
        killed_mono=killed_mono,
        down_seconds=restart_mono - killed_mono,
    )
    await stack.start(kind.parts)
    client = await stack.client()
    first = await running_count(client)
    kill.running_at_restart = first or 0

    async def nothing_running() -> bool:
        return await running_count(client) == 0

    # Model turns and tool calls heartbeat, so one cut by the crash is retried
    # within its heartbeat timeout (10 s, 20 s), well inside the target.
    await poll_until(
        nothing_running, within=RECOVERY_TARGET, what=f"no run RUNNING after the {kind} restart"
    )
    kill.recovery_seconds = time.monotonic() - restart_mono
    logger.warning(
        "%s back: down %.1f s, %d runs RUNNING at restart, none after %.1f s",
        kind,
        kill.down_seconds,
        kill.running_at_restart,
        kill.recovery_seconds,
    )
    load.release()
    return kill


async def _acked_since(load: Load, since: float) -> bool:
    return any(f.acked_at is not None and f.acked_at > since for f in load.flows)


async def _expiry_ahead(load: Load, seconds: float) -> bool:
    now = datetime.now(UTC).timestamp()
    return any(c.expires_at.timestamp() > now + seconds for c in load.pending_expiries())


async def _now_past(moment: datetime) -> bool:
    return datetime.now(UTC) > moment


async def run_campaign(
    kind: KillKind,
    config: FaultConfig,
    seed: int,
    model: ScriptedModel,
    root: Path,
) -> tuple[Verdict, FaultStack]:
    """Start the stack, run the load with ``config.kills`` kills of ``kind``, verify.

    Returns:
        The verdict (its ``problems`` empty when every guarantee held) and the
        stack, already stopped, whose logs explain a failure.
    """
    rng = random.Random(f"{seed}:{kind}")
    stack = FaultStack(root, model.base_url, config)
    verdict = Verdict(kind=kind.value, config=config.name, seed=seed)
    load = Load(stack.api_url, model, seed=seed, concurrency=config.concurrency)
    try:
        await stack.start()
        load.start()
        since = time.monotonic()
        for _ in range(config.kills):
            # When to strike is the schedule, drawn from the seeded RNG.
            await asyncio.sleep(rng.uniform(*config.kill_after))
            kill = await _kill_once(stack, load, kind, rng, config, since)
            verdict.kills.append(kill)
            since = kill.killed_mono + kill.down_seconds
        await asyncio.sleep(config.load_seconds)
        if not await load.stop(within=LOAD_STOP_WITHIN):
            verdict.problems.append(f"flows still busy {LOAD_STOP_WITHIN:g} s after the load")
        close_within = (
            config.ttl_seconds + stack.settings.llm_timeout.total_seconds() + CLOSE_MARGIN
        )
        await verify(stack, load, verdict, close_within=close_within)
    finally:
        await load.stop(within=30.0)
        await stack.close()
    return verdict, stack
