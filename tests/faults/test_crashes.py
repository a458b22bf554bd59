"""Crash at any point: SIGKILL the worker, the API, the Temporal server or all three
under a steady load of approval flows, restart, and check every guarantee.

After each kind of kill: every approved call has exactly one effect; no
rejected, expired or still-waiting call has any; no run is stuck; TTLs that
fell due while the stack was down fire after the restart (a deny); every
decision the API acknowledged is applied; every audit trail verifies; and
every run moves on within the recovery bound of the restart.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults import config
from tests.faults.campaign import KillKind, run_campaign
from tests.faults.results import Results
from tests.scripted_openai import ScriptedModel

CONFIG = config.current()

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1800 if CONFIG.name == "long" else 360)]


@pytest.mark.parametrize("kind", list(KillKind), ids=[k.value for k in KillKind])
async def test_guarantees_hold_across_kills(
    kind: KillKind,
    model: ScriptedModel,
    fault_seed: int,
    fault_results: Results,
    tmp_path: Path,
) -> None:
    verdict, stack = await run_campaign(kind, CONFIG, fault_seed, model, tmp_path)
    fault_results.add(verdict)
    context = f"seed {fault_seed}, logs in {stack.root / 'logs'}"

    assert not verdict.problems, "\n".join([context, *verdict.problems[:40], stack.log_tail()])
    assert (verdict.lost, verdict.doubled, verdict.stuck) == (0, 0, 0), context
    assert len(verdict.kills) == CONFIG.kills
    # The load must have exercised every outcome around the kills, or the
    # checks above had nothing to catch.
    assert verdict.executed > 0, context
    assert verdict.rejected > 0, context
    assert verdict.expired > 0, context
    assert verdict.effects == verdict.executed, context
    assert verdict.acknowledged_before_a_kill > 0, context
    assert verdict.audit_verified == verdict.runs, context
    if kind is KillKind.ALL:
        assert verdict.timers_due_while_down > 0, context
