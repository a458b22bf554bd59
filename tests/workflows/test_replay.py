"""Replay: recorded histories must still replay against the current workflow code.

A change to ``AgentRunWorkflow`` that would break runs already in flight (a
reordered activity, a new timer, a removed handler) fails here. Every
``tests/histories/*.json`` is replayed, so a new recording is covered without
code. Never re-record to make this pass: see ``docs/histories.md``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHistory

from tests.histories.record import history_files, record_scenario, recording_stack, scenario_of
from tests.histories.replay import replay_failure
from tests.histories.scenarios import SCENARIOS, Recording
from tests.scripted_openai import ScriptedModel
from tests.workflows.helpers import Worker

RECORDED = history_files()


def test_every_scenario_has_a_recorded_history() -> None:
    recorded = {scenario_of(path) for path in RECORDED}

    assert set(SCENARIOS) <= recorded, f"never recorded: {set(SCENARIOS) - recorded}"


@pytest.mark.parametrize("path", RECORDED, ids=[path.name for path in RECORDED])
async def test_recorded_history_replays(path: Path) -> None:
    assert await replay_failure(path) is None


async def test_fresh_recordings_replay(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    # Keeps the recorder working, and catches non-determinism within the
    # current code (such as iterating a set) before anyone records it.
    recording = Recording(client, worker, model)
    histories: list[WorkflowHistory] = []
    for name, scenario in SCENARIOS.items():
        if not scenario.continues_as_new:
            histories += await record_scenario(name, recording)
    async with recording_stack(small_history=True) as small:
        for name, scenario in SCENARIOS.items():
            if scenario.continues_as_new:
                histories += await record_scenario(name, small)

    for history in histories:
        assert await replay_failure(history) is None, history.workflow_id
