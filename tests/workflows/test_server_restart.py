"""Durable: a paused run survives a restart of the Temporal server and of the worker."""

from __future__ import annotations

import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from countersign.client import RunClient
from countersign.models import CallState, RunStatus
from tests.conftest import make_settings, start_dev_server
from tests.scripted_openai import Call, Reply, ScriptedModel, free_port
from tests.workflows.helpers import approve, running_worker, start_paused


async def _server(db: Path, port: int) -> WorkflowEnvironment:
    return await start_dev_server(dev_server_database_filename=str(db), port=port)


async def test_paused_run_survives_server_restart(model: ScriptedModel, tmp_path: Path) -> None:
    db, port = tmp_path / "temporal.sqlite3", free_port()
    settings = make_settings(model, tmp_path, f"tq-{uuid.uuid4()}")
    message = "Delete 50 users across a server restart"
    delete = Call("delete_records", {"table_name": "users", "count": 50})

    async with (
        await _server(db, port) as first,
        running_worker(first.client, settings) as worker,
    ):
        _, paused = await start_paused(
            first.client, worker, model, message, Reply(calls=[delete]), agent_id="data_manager"
        )
    [pending] = paused.pending

    async with (
        await _server(db, port) as second,
        running_worker(second.client, settings) as worker,
    ):
        done = await approve(
            RunClient.of(second.client, paused.run_id).handle, pending.tool_call_id
        )

    assert done.status is RunStatus.COMPLETED
    assert done.tools[0].state is CallState.EXECUTED
    assert worker.db.count("users") == 950
    assert worker.db.effect_count("delete_records") == 1
