"""Long runs continue as new when Temporal suggests it, and lose nothing on the way."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from countersign.client import RunClient, build_run_input, workflow_id
from countersign.digest import first_broken_link
from countersign.models import CallState, Principal, RunInput, RunStatus, RunView
from countersign.settings import Settings
from tests.agents_for_tests import AGENT_ID
from tests.api.conftest import eventually
from tests.conftest import make_settings, start_dev_server
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.workflows.helpers import TEST_AGENT_MODULES, running_worker
from workflows.agent_run import AgentRunWorkflow

COUNT = Call("count_rows", {"table_name": "orders"})


@pytest.fixture(scope="module")
async def small_history_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that suggests continue-as-new after a few history events."""
    async with await start_dev_server(suggest_continue_as_new_at=12) as environment:
        yield environment


def scripted_run(
    model: ScriptedModel, tmp_path: Path, message: str, *replies: Reply
) -> tuple[Settings, RunInput]:
    """Settings for a worker of the test agents, and a run whose model says ``replies``."""
    model.script(message, *replies)
    settings = make_settings(
        model, tmp_path, f"tq-{uuid.uuid4()}", agent_modules=TEST_AGENT_MODULES
    )
    run = build_run_input(
        settings, agent_id=AGENT_ID, message=message, requester=Principal(id="alice")
    )
    return settings, run


async def start(client: Client, settings: Settings, run: RunInput) -> WorkflowHandle[Any, RunView]:
    """Start ``run`` straight through Temporal."""
    return await client.start_workflow(
        AgentRunWorkflow.run,
        run,
        id=workflow_id(run.run_id),
        task_queue=settings.temporal_task_queue,
    )


async def test_run_continues_as_new_and_keeps_its_state(
    small_history_env: WorkflowEnvironment, model: ScriptedModel, tmp_path: Path
) -> None:
    client = small_history_env.client
    message = "Count the orders four times"
    settings, run = scripted_run(
        model, tmp_path, message, *(Reply(calls=[COUNT]) for _ in range(4))
    )
    async with running_worker(client, settings):
        handle = await start(client, settings, run)
        done = await handle.result()
        first_history = await client.get_workflow_handle(
            handle.id, run_id=handle.result_run_id
        ).fetch_history()
        trail = await client.get_workflow_handle(handle.id).query(AgentRunWorkflow.audit)

    assert (
        first_history.events[-1].event_type
        == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    )
    assert done.status is RunStatus.COMPLETED
    assert done.turns == 5
    assert [t.state for t in done.tools] == [CallState.EXECUTED] * 4
    assert done.message == message
    assert done.content is not None
    assert done.content.startswith("Final answer: orders has 500 rows")
    assert first_broken_link(trail) is None
    assert trail[0].kind.value == "run.started"
    assert trail[-1].kind.value == "run.finished"


async def test_a_view_asked_of_an_execution_that_continued_as_new_reads_the_next_one(
    small_history_env: WorkflowEnvironment, model: ScriptedModel, tmp_path: Path
) -> None:
    """A query that reaches an execution just as it continued as new is rejected.

    The view must then read the run's next execution, not wait for the run's
    final result, which a paused run never gives until someone decides. Here
    the query is pinned to the first execution, so the rejection always happens.
    """
    client = small_history_env.client
    message = "Count the orders four times, then delete some"
    delete = Call("weekly_delete", {"table_name": "orders", "count": 5})
    settings, run = scripted_run(
        model, tmp_path, message, *(Reply(calls=[COUNT]) for _ in range(4)), Reply(calls=[delete])
    )
    async with running_worker(client, settings):
        handle = await start(client, settings, run)
        paused = await eventually(
            RunClient.of(client, run.run_id).view,
            lambda v: v.status is RunStatus.PAUSED,
            within=30,
        )
        first = client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
        first_history = await first.fetch_history()
        view = await asyncio.wait_for(RunClient(first, client).view(), timeout=10)

    assert (
        first_history.events[-1].event_type
        == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    )
    assert view.status is RunStatus.PAUSED
    assert view.pause_count == paused.pause_count
