"""Push: the workflow delivers Standard Webhooks as activities, retried until taken.

Receivers here verify as a real one would, with the ``standardwebhooks``
library: ``Webhook(secret).verify(body, headers)``.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from temporalio.client import Client

from activities.notify import ID_HEADER, SIGNATURE_HEADER, WebhookActivities, WebhookConfigError
from countersign.models import RunStatus, WebhookDelivery, WebhookEvent
from countersign.settings import Settings
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.webhook_receiver import Receiver, webhook_receiver
from tests.workflows.conftest import WorkerFactory
from tests.workflows.helpers import approve, eventually, reject, start_paused

DELETE = Call("delete_records", {"table_name": "users", "count": 3})


def new_secret() -> str:
    """A Standard Webhooks secret, as an operator would generate one."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


OLD_SECRET = new_secret()
NEW_SECRET = new_secret()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with webhook_receiver() as box:
        yield box


async def test_run_pushes_events_that_verify_with_old_and_new_secret(
    client: Client, start_worker: WorkerFactory, model: ScriptedModel, receiver: Receiver
) -> None:
    # Mid-rotation: the worker signs with both secrets.
    async with start_worker(
        webhook_urls=[receiver.url], webhook_secrets=[OLD_SECRET, NEW_SECRET]
    ) as worker:
        message = "Delete 3 users and tell the hooks"
        handle, paused = await start_paused(client, worker, model, message, Reply(calls=[DELETE]))
        done = await approve(handle, paused.pending[0].tool_call_id)
        await handle.result()

    assert done.status is RunStatus.COMPLETED
    assert receiver.events == ["approval.requested", "approval.decided", "run.completed"]
    for headers, body in zip(receiver.headers, receiver.bodies, strict=True):
        assert headers[SIGNATURE_HEADER].count("v1,") == 2
        # A receiver still on the old secret and one already on the new both verify.
        assert Webhook(OLD_SECRET).verify(body, headers) == json.loads(body)
        assert Webhook(NEW_SECRET).verify(body, headers) == json.loads(body)
        with pytest.raises(WebhookVerificationError):
            Webhook(new_secret()).verify(body, headers)
    requested, decided, completed = (json.loads(b) for b in receiver.bodies)
    assert requested["run_id"] == done.run_id
    assert requested["data"]["tools"][0]["tool_args"] == {"table_name": "users", "count": 3}
    assert decided["data"]["decision"]["principal"]["id"] == "alice"
    assert completed["data"]["status"] == "COMPLETED"
    ids = [h[ID_HEADER] for h in receiver.headers]
    assert len(set(ids)) == 3
    assert [json.loads(b)["delivery_id"] for b in receiver.bodies] == ids


async def test_replayed_body_with_fresh_id_fails_verification(
    client: Client, start_worker: WorkerFactory, model: ScriptedModel, receiver: Receiver
) -> None:
    async with start_worker(webhook_urls=[receiver.url], webhook_secrets=[NEW_SECRET]) as worker:
        message = "Delete 3 users, and someone replays the hook"
        await start_paused(client, worker, model, message, Reply(calls=[DELETE]))
        await eventually(delivered(receiver), what="approval.requested delivered")

    [headers] = receiver.headers
    [body] = receiver.bodies
    Webhook(NEW_SECRET).verify(body, headers)
    # An attacker who captured the delivery resends it under an id the
    # receiver has not seen, to pass its duplicate check: the id is signed.
    replayed = {**headers, ID_HEADER: headers[ID_HEADER] + "-again"}
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(NEW_SECRET).verify(body, replayed)
    tampered = body.replace(b'"count":3', b'"count":300')
    assert tampered != body
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(NEW_SECRET).verify(tampered, headers)


async def test_receiver_down_is_retried_with_the_same_id_and_heartbeats_hold_no_urls(
    client: Client, start_worker: WorkerFactory, model: ScriptedModel
) -> None:
    async with (
        webhook_receiver() as up,
        webhook_receiver(fail_first=2) as down,
        start_worker(webhook_urls=[up.url, down.url], webhook_secrets=[NEW_SECRET]) as worker,
    ):
        message = "Delete 3 users while one hook receiver is down"
        handle, paused = await start_paused(client, worker, model, message, Reply(calls=[DELETE]))

        async def progress() -> list[object] | None:
            description = await handle.describe()
            for pending in description.raw_description.pending_activities:
                if pending.heartbeat_details.payloads:
                    details = client.data_converter.payload_converter.from_payloads(
                        pending.heartbeat_details.payloads
                    )
                    return list(details)
            return None

        # The receiver that took the event is remembered by its index in the list.
        assert await eventually(progress, what="a heartbeat between attempts") == [[0]]
        await eventually(delivered(down), what="the down receiver to recover")
        await reject(handle, paused.pending[0].tool_call_id)
        await handle.result()
        history = _readable((await handle.fetch_history()).to_json())

    assert down.attempts == 2 + 3
    # The receiver that was up got each event once: retries skipped it.
    assert up.events == ["approval.requested", "approval.decided", "run.completed"]
    assert down.events == up.events
    assert [h[ID_HEADER] for h in down.headers] == [h[ID_HEADER] for h in up.headers]
    for box in (up, down):
        for headers, body in zip(box.headers, box.bodies, strict=True):
            Webhook(NEW_SECRET).verify(body, headers)
    for url in (up.url, down.url):
        assert url.split("//", 1)[1] not in history
    assert worker.db.effect_count() == 0


async def test_no_receivers_means_no_webhook_activity(
    client: Client, start_worker: WorkerFactory, model: ScriptedModel
) -> None:
    async with start_worker() as worker:
        message = "Delete 3 users with no hooks configured"
        handle, paused = await start_paused(client, worker, model, message, Reply(calls=[DELETE]))
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


def test_unsigned_webhooks_refused_at_worker_start_unless_allowed() -> None:
    urls = ["http://127.0.0.1:9/hooks"]

    with pytest.raises(WebhookConfigError, match="COUNTERSIGN_WEBHOOK_SECRETS is not"):
        WebhookActivities(Settings(webhook_urls=urls))

    allowed = WebhookActivities(Settings(webhook_urls=urls, webhook_allow_unsigned=True))
    assert SIGNATURE_HEADER not in allowed.headers(_delivery(), b"{}")


def test_secret_not_in_standard_format_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="must be 'whsec_'") as refused:
        Settings(webhook_secrets="plain-old-secret-0123456789abcdef")
    assert "plain-old-secret" not in str(refused.value)


def _delivery() -> WebhookDelivery:
    return WebhookDelivery(
        delivery_id="r:1",
        event=WebhookEvent.RUN_COMPLETED,
        run_id="r",
        agent_id="a",
        occurred_at=datetime.now(UTC),
    )


def _readable(history_json: str) -> str:
    """The history's JSON followed by every payload's data, decoded from base64."""
    decoded: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, str) and "metadata" in node:
                decoded.append(base64.b64decode(data).decode(errors="replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history_json))
    return "\n".join([history_json, *decoded])


def delivered(box: Receiver) -> Callable[[], Awaitable[list[str] | None]]:
    """A check for :func:`eventually`: the events ``box`` took, once it took one."""

    async def check() -> list[str] | None:
        return box.events or None

    return check
