"""A decision sent while no worker runs is held by Temporal and applied when one returns."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import Client

from countersign.client import NotAcceptedError, RunClient
from countersign.models import CallState, RunStatus
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.workflows.conftest import WorkerFactory
from tests.workflows.helpers import request, start_paused

DELETE = Call("delete_records", {"table_name": "users", "count": 7})


async def test_decision_while_worker_down_applies_once_when_worker_returns(
    client: Client, start_worker: WorkerFactory, model: ScriptedModel
) -> None:
    message = "Delete 7 users while the worker is down"
    async with start_worker() as worker:
        handle, paused = await start_paused(client, worker, model, message, Reply(calls=[DELETE]))
    [pending] = paused.pending

    with pytest.raises(NotAcceptedError):
        await RunClient(handle).decide(
            request({pending.tool_call_id: True}),
            wait=timedelta(seconds=1),
        )

    async with start_worker() as worker:
        done = await handle.result()

    assert done.status is RunStatus.COMPLETED
    assert done.tools[0].state is CallState.EXECUTED
    assert worker.db.effect_count("delete_records") == 1
