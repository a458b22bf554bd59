"""Default deny: a confirmation nobody gives expires on a server timer.

Short TTLs run on the dev server, waiting on the run's real result; the
seven-day TTL runs on the time-skipping server.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from countersign.client import RunClient
from countersign.models import AuditKind, CallState, ErrorCode, RunStatus, RunView
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.workflows.helpers import (
    WAIT,
    Worker,
    approve,
    assert_refused,
    audit_trail,
    call_ids,
    current,
    eventually,
    request,
    start_paused,
    tool_outputs_sent,
)

QUICK = Call("quick_delete", {"table_name": "users", "count": 10})


async def test_unanswered_confirmation_expires_and_is_denied(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    message = "Quick delete that nobody confirms"
    handle, paused = await start_paused(client, worker, model, message, Reply(calls=[QUICK]))
    [pending] = paused.pending
    assert pending.expires_at is not None

    done = await handle.result()

    assert done.status is RunStatus.COMPLETED
    [call] = done.tools
    assert call.state is CallState.EXPIRED
    assert call.confirmed is False
    assert call.result == f"denied: confirmation expired at {pending.expires_at.isoformat()}"
    assert worker.db.effect_count() == 0
    assert tool_outputs_sent(model, message) == [call.result]
    kinds = [e.kind for e in await audit_trail(handle)]
    assert AuditKind.APPROVAL_EXPIRED in kinds
    assert AuditKind.TOOL_EXECUTED not in kinds


async def test_decision_after_expiry_refused(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    # The long-lived call keeps the run paused after the quick one expires.
    handle, paused = await start_paused(
        client,
        worker,
        model,
        "Quick delete expires, the other waits",
        Reply(calls=[QUICK, Call("delete_records", {"table_name": "orders", "count": 5})]),
    )
    [quick_id] = call_ids(paused, "quick_delete")
    [other_id] = call_ids(paused, "delete_records")

    async def quick_expired() -> RunView | None:
        view = await current(handle)
        [quick] = [t for t in view.tools if t.tool_call_id == quick_id]
        return view if quick.state is CallState.EXPIRED else None

    await eventually(quick_expired, what="the quick call's TTL")

    await assert_refused(
        ErrorCode.EXPIRED, RunClient(handle).decide(request({quick_id: True}), wait=WAIT)
    )

    view = await current(handle)
    assert view.status is RunStatus.PAUSED
    assert [t.tool_call_id for t in view.pending] == [other_id]
    done = await approve(handle, other_id)
    assert done.status is RunStatus.COMPLETED
    assert worker.db.count("users") == 1000
    assert worker.db.count("orders") == 495


async def test_expiry_with_cancel_run_ends_cancelled(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, _ = await start_paused(
        client,
        worker,
        model,
        "Purge or cancel the whole run",
        Reply(calls=[Call("purge_or_cancel", {"table_name": "sessions", "count": 5})]),
    )

    done = await handle.result()

    assert done.status is RunStatus.CANCELLED
    assert done.error is not None
    assert done.error.startswith("run cancelled: confirmation of purge_or_cancel")
    assert done.tools[0].state is CallState.EXPIRED
    assert worker.db.count("sessions") == 2000
    # No model turn after the cancel: the model saw the request only once.
    assert done.turns == 1


async def test_week_long_ttl_expires_on_time_skipping_server(
    ts_env: WorkflowEnvironment, ts_worker: Worker, model: ScriptedModel
) -> None:
    message = "Weekly delete that nobody confirms"
    handle, paused = await start_paused(
        ts_env.client,
        ts_worker,
        model,
        message,
        Reply(calls=[Call("weekly_delete", {"table_name": "users", "count": 10})]),
    )
    [pending] = paused.pending
    assert pending.expires_at is not None
    assert pending.expires_at - paused.updated_at == timedelta(days=7)

    # The SDK skips time only around result() of handles it started itself;
    # update-with-start gives a plain handle, so unlock skipping explicitly.
    async with ts_env.time_skipping_unlocked():  # type: ignore[attr-defined]
        done = await handle.result()

    assert done.status is RunStatus.COMPLETED
    assert done.tools[0].state is CallState.EXPIRED
    assert done.tools[0].result == (
        f"denied: confirmation expired at {pending.expires_at.isoformat()}"
    )
    assert ts_worker.db.effect_count() == 0
    assert done.updated_at >= pending.expires_at


async def test_cancel_run_expiry_ends_run_with_other_calls_pending(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, paused = await start_paused(
        client,
        worker,
        model,
        "Purge or cancel, next to a call that may wait a day",
        Reply(
            calls=[
                Call("purge_or_cancel", {"table_name": "sessions", "count": 5}),
                Call("delete_records", {"table_name": "users", "count": 50}),
            ]
        ),
    )
    [other_id] = call_ids(paused, "delete_records")

    done = await asyncio.wait_for(handle.result(), WAIT.total_seconds())

    assert done.status is RunStatus.CANCELLED
    assert done.pending == [], "a cancelled run must not leave calls awaiting a decision"
    [other] = [t for t in done.tools if t.tool_call_id == other_id]
    # Denied because the run was cancelled, not because its own TTL ran out.
    assert other.state is CallState.CANCELLED
    assert other.confirmed is False
    assert (other.result or "").startswith("denied: run cancelled: confirmation of purge_or_cancel")
    assert worker.db.effect_count() == 0
