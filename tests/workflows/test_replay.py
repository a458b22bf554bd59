"""Replay: recorded histories must still replay against the current workflow code.

A change to ``AgentRunWorkflow`` that would break runs already in flight (a
reordered activity, a new timer, a removed handler) fails here. Re-record with
``python -m tests.histories.record`` only for a deliberate, versioned change.
"""

from __future__ import annotations

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.histories.record import HISTORY_DIR, SCENARIOS, Recording, record_scenario
from tests.scripted_openai import ScriptedModel
from tests.workflows.helpers import Worker
from workflows.agent_run import AgentRunWorkflow

RECORDED = {path.stem: path.read_text() for path in sorted(HISTORY_DIR.glob("*.json"))}


def _replayer() -> Replayer:
    return Replayer(workflows=[AgentRunWorkflow], data_converter=pydantic_data_converter)


def test_every_scenario_has_a_recorded_history() -> None:
    assert set(RECORDED) == set(SCENARIOS)


@pytest.mark.parametrize("name", list(RECORDED))
async def test_recorded_history_replays(name: str) -> None:
    history = WorkflowHistory.from_json(f"replay-{name}", RECORDED[name])

    result = await _replayer().replay_workflow(history)

    assert result.replay_failure is None


async def test_fresh_recordings_replay(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    # Keeps the recorder working, and catches non-determinism within the
    # current code (such as iterating a set) before anyone records it.
    recording = Recording(client, worker, model)
    histories = [
        WorkflowHistory.from_json(name, await record_scenario(name, recording))
        for name in SCENARIOS
    ]

    for history in histories:
        result = await _replayer().replay_workflow(history)
        assert result.replay_failure is None, history.workflow_id
