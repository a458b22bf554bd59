"""Push: the workflow delivers signed webhooks as activities, retried until taken."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from activities.notify import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from countersign.models import RunStatus
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.webhook_receiver import Receiver, webhook_receiver
from tests.workflows.conftest import WorkerFactory
from tests.workflows.helpers import approve, reject, start_paused

SECRET = "webhook-secret-for-tests-0123456789"
DELETE = Call("delete_records", {"table_name": "users", "count": 3})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as box:
        yield box


async def test_run_pushes_signed_events_in_order(
    client: object, start_worker: WorkerFactory, model: ScriptedModel, receiver: Receiver
) -> None:
    async with start_worker(webhook_urls=[receiver.url], webhook_secret=SECRET) as worker:
        message = "Delete 3 users and tell the hooks"
        handle, paused = await start_paused(
            client,  # type: ignore[arg-type]
            worker,
            model,
            message,
            Reply(calls=[DELETE]),
        )
        done = await approve(handle, paused.pending[0].tool_call_id)
        await handle.result()

    assert done.status is RunStatus.COMPLETED
    assert receiver.events == ["approval.requested", "approval.decided", "run.completed"]
    for request, body in zip(receiver.received, receiver.bodies, strict=True):
        timestamp = request.headers[TIMESTAMP_HEADER]
        assert request.headers[SIGNATURE_HEADER] == sign(SECRET, timestamp, body)
    requested, decided, completed = (json.loads(b) for b in receiver.bodies)
    assert requested["run_id"] == done.run_id
    assert requested["data"]["tools"][0]["tool_args"] == {"table_name": "users", "count": 3}
    assert decided["data"]["decision"]["principal"]["id"] == "alice"
    assert completed["data"]["status"] == "COMPLETED"
    ids = [r.headers[DELIVERY_HEADER] for r in receiver.received]
    assert len(set(ids)) == 3


async def test_receiver_down_is_retried_with_the_same_delivery_id(
    client: object, start_worker: WorkerFactory, model: ScriptedModel, receiver: Receiver
) -> None:
    receiver.fail_first = 2
    async with start_worker(webhook_urls=[receiver.url], webhook_secret=SECRET) as worker:
        message = "Delete 3 users while the hook receiver is down"
        handle, paused = await start_paused(
            client,  # type: ignore[arg-type]
            worker,
            model,
            message,
            Reply(calls=[DELETE]),
        )
        await reject(handle, paused.pending[0].tool_call_id)
        await handle.result()

    assert receiver.attempts == 5
    assert receiver.events == ["approval.requested", "approval.decided", "run.completed"]
    assert worker.db.effect_count() == 0


async def test_no_receivers_means_no_webhook_activity(
    client: object, start_worker: WorkerFactory, model: ScriptedModel
) -> None:
    async with start_worker() as worker:
        message = "Delete 3 users with no hooks configured"
        handle, paused = await start_paused(
            client,  # type: ignore[arg-type]
            worker,
            model,
            message,
            Reply(calls=[DELETE]),
        )
        await approve(handle, paused.pending[0].tool_call_id)
        await handle.result()
        history = await handle.fetch_history()

    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "deliver_webhook" not in scheduled
    assert scheduled == ["model_turn", "execute_tool", "model_turn"]
