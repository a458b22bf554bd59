"""Durability: the worker is SIGKILLed mid-run and a new one finishes the run.

The worker runs as a real subprocess (``python worker.py``), configured through
its environment as in production, so the kill is a real crash.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from countersign.client import RunClient
from countersign.demo_db import DemoDatabase
from countersign.models import EXECUTE_TOOL_ACTIVITY, CallState, RunStatus
from tests.agents_for_tests import release_file
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.workflows.conftest import ProcessFactory, SettingsFactory
from tests.workflows.helpers import (
    WAIT,
    Worker,
    approve,
    eventually,
    request,
    start_paused,
)

# Short, so the server notices the dead worker's activity within a second.
HEARTBEAT = timedelta(seconds=1)


def _tool_attempts(events: list[HistoryEvent]) -> list[int]:
    """Attempt numbers of the ``execute_tool`` activities that started."""
    scheduled = {
        e.event_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == EXECUTE_TOOL_ACTIVITY
    }
    return [
        e.activity_task_started_event_attributes.attempt
        for e in events
        if e.HasField("activity_task_started_event_attributes")
        and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]


async def test_worker_killed_while_paused_new_worker_finishes(
    client: Client,
    model: ScriptedModel,
    test_settings: SettingsFactory,
    worker_processes: ProcessFactory,
) -> None:
    settings = test_settings(tool_heartbeat_timeout=HEARTBEAT)
    worker = Worker(settings, DemoDatabase(settings.demo_db_path))
    first = worker_processes()
    first.start()
    handle, paused = await start_paused(
        client,
        worker,
        model,
        "Crash while paused",
        Reply(calls=[Call("delete_records", {"table_name": "users", "count": 50})]),
    )

    first.kill()
    worker_processes().start()
    done = await approve(handle, paused.tools[0].tool_call_id)

    assert done.status is RunStatus.COMPLETED
    assert done.tools[0].state is CallState.EXECUTED
    assert worker.db.count("users") == 950
    assert worker.db.effect_count("delete_records") == 1


async def test_worker_killed_during_approved_tool_no_double_effect(
    client: Client,
    model: ScriptedModel,
    test_settings: SettingsFactory,
    worker_processes: ProcessFactory,
) -> None:
    settings = test_settings(tool_heartbeat_timeout=HEARTBEAT)
    worker = Worker(settings, DemoDatabase(settings.demo_db_path))
    first = worker_processes()
    first.start()
    handle, paused = await start_paused(
        client,
        worker,
        model,
        "Crash in the middle of a delete",
        Reply(calls=[Call("blocking_delete", {"table_name": "users", "count": 50})]),
    )
    await RunClient(handle).decide(request({paused.tools[0].tool_call_id: True}), wait=None)

    async def effect_made() -> bool:
        return worker.db.effect_count("delete_records") == 1

    # The tool made its effect and is now blocked: kill at that known point.
    await eventually(effect_made, what="the blocking tool's effect")
    first.kill()
    release_file(settings.demo_db_path).touch()
    second = worker_processes()
    second.start()
    done = await asyncio.wait_for(handle.result(), WAIT.total_seconds() * 2)

    assert done.status is RunStatus.COMPLETED, second.log()
    assert done.tools[0].state is CallState.EXECUTED
    assert worker.db.effect_count("delete_records") == 1
    assert worker.db.count("users") == 950
    assert "Deleted 50 records from users (950 remain)" in (done.content or "")
    # The tool activity really ran again on the new worker, and found its effect.
    history = await handle.fetch_history()
    [attempt] = _tool_attempts(list(history.events))
    assert attempt >= 2
