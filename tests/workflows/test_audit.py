"""The audit trail: every step of a run, chained by hash."""

from __future__ import annotations

from temporalio.client import Client

from countersign.digest import first_broken_link
from countersign.models import AuditKind, DecisionSource, RunStatus
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.workflows.helpers import (
    BOB,
    Worker,
    approve,
    audit_trail,
    call_ids,
    decide_and_wait,
    eventually,
    request,
    start_paused,
)
from workflows.agent_run import AgentRunWorkflow

DELETE_50 = Call("delete_records", {"table_name": "users", "count": 50})


async def test_audit_trail_of_full_run_verifies(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, paused = await start_paused(
        client, worker, model, "Audit a simple approval", Reply(calls=[DELETE_50])
    )
    call_id = paused.tools[0].tool_call_id
    await approve(handle, call_id)

    trail = await audit_trail(handle)

    assert [e.kind for e in trail] == [
        AuditKind.RUN_STARTED,
        AuditKind.APPROVAL_REQUESTED,
        AuditKind.DECISION_RECORDED,
        AuditKind.TOOL_EXECUTED,
        AuditKind.RUN_FINISHED,
    ]
    assert first_broken_link(trail) is None
    requested, decided, executed = trail[1], trail[2], trail[3]
    assert requested.data["args_digest"] == paused.tools[0].args_digest
    assert decided.principal is not None
    assert decided.principal.id == "alice"
    assert decided.source is DecisionSource.API
    assert executed.detail.startswith("Deleted 50 records from users")
    assert trail[-1].data == {"status": RunStatus.COMPLETED.value}


async def test_audit_trail_with_refusal_reject_and_ungated_call_verifies(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    notify = Call("send_notification", {"recipient": "ops", "message": "done"})
    handle, paused = await start_paused(
        client,
        worker,
        model,
        "Audit a mixed batch",
        Reply(calls=[DELETE_50, Call("count_rows", {"table_name": "users"}), notify]),
    )
    [delete_id] = call_ids(paused, "delete_records")
    [notify_id] = call_ids(paused, "send_notification")
    await handle.signal(AgentRunWorkflow.decide_signal, request({"call_nope": True}, BOB))

    async def refusal_recorded() -> bool:
        return any(e.kind is AuditKind.DECISION_REFUSED for e in await audit_trail(handle))

    await eventually(refusal_recorded, what="the refused signal in the audit trail")
    await decide_and_wait(handle, {delete_id: True, notify_id: False})

    trail = await audit_trail(handle)

    assert first_broken_link(trail) is None
    assert [e.seq for e in trail] == list(range(len(trail)))
    kinds = [e.kind for e in trail]
    assert kinds.count(AuditKind.TOOL_EXECUTED) == 2  # count_rows, then the delete
    assert kinds.count(AuditKind.APPROVAL_REQUESTED) == 2
    assert kinds.count(AuditKind.DECISION_RECORDED) == 2
    assert kinds.count(AuditKind.DECISION_REFUSED) == 1


async def test_tampered_audit_trail_is_detected(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, paused = await start_paused(
        client, worker, model, "Audit then tamper", Reply(calls=[DELETE_50])
    )
    await approve(handle, paused.tools[0].tool_call_id)
    trail = await audit_trail(handle)

    forged = [e.model_copy(deep=True) for e in trail]
    forged[2].detail = "rejected"

    assert first_broken_link(forged) == 2
    assert first_broken_link(trail[:2] + trail[3:]) == 2
