"""A run cancelled through Temporal (UI, CLI) ends CANCELLED and denies what waited."""

from __future__ import annotations

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import CancelledError

from countersign.models import AuditKind, CallState, RunStatus
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.workflows.helpers import Worker, audit_trail, current, start_paused

DELETE = Call("delete_records", {"table_name": "users", "count": 5})


async def test_cancel_paused_run_records_cancelled_and_denies_pending(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    message = "Delete 5 users, then the operator cancels"
    handle, paused = await start_paused(client, worker, model, message, Reply(calls=[DELETE]))
    [pending] = paused.pending

    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()

    assert isinstance(failure.value.cause, CancelledError)
    view = await current(handle)
    assert view.status is RunStatus.CANCELLED
    assert view.error == "run cancelled through Temporal"
    [call] = view.tools
    assert call.tool_call_id == pending.tool_call_id
    assert call.state is CallState.CANCELLED
    assert call.confirmed is False
    assert call.result == "denied: run cancelled through Temporal"
    assert worker.db.effect_count() == 0
    kinds = [e.kind for e in await audit_trail(handle)]
    assert kinds[-2:] == [AuditKind.APPROVAL_CANCELLED, AuditKind.RUN_FINISHED]
