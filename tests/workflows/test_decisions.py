"""Decisions: reject, batches decided at once or one by one, several pauses, and
every refusal the ``decide`` validator makes, with the run left unchanged.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import Client

from countersign.client import DecisionRefusedError, RunClient
from countersign.models import (
    AuditEvent,
    AuditKind,
    CallState,
    DecisionInput,
    DecisionSource,
    ErrorCode,
    Principal,
    RunStatus,
)
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.workflows.helpers import (
    ALICE,
    BOB,
    CAROL,
    WAIT,
    RunHandle,
    Worker,
    approve,
    assert_refused,
    audit_trail,
    call_ids,
    current,
    decide_and_wait,
    eventually,
    reject,
    request,
    start_paused,
    tool_outputs_sent,
)
from workflows.agent_run import AgentRunWorkflow

DELETE_50 = Call("delete_records", {"table_name": "users", "count": 50})
NOTIFY = Call("send_notification", {"recipient": "ops", "message": "cleanup done"})
COUNT_ORDERS = Call("count_rows", {"table_name": "orders"})


async def _paused_batch(
    client: Client, worker: Worker, model: ScriptedModel, message: str
) -> tuple[RunHandle, str, str]:
    """A run paused on a turn of two gated calls and one ungated call.

    Returns:
        The handle, the delete call's id and the notification call's id.
    """
    handle, view = await start_paused(
        client, worker, model, message, Reply(calls=[DELETE_50, COUNT_ORDERS, NOTIFY])
    )
    [delete_id] = call_ids(view, "delete_records")
    [notify_id] = call_ids(view, "send_notification")
    return handle, delete_id, notify_id


async def _assert_still_paused(handle: RunHandle, *pending: str) -> None:
    """The run is paused with exactly ``pending`` awaiting, and nothing decided."""
    view = await current(handle)
    assert view.status is RunStatus.PAUSED
    assert sorted(t.tool_call_id for t in view.pending) == sorted(pending)
    assert all(not t.decisions for t in view.pending)


async def test_reject_skips_tool_and_tells_model(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    message = "Delete 50 users, I will probably say no"
    handle, paused = await start_paused(client, worker, model, message, Reply(calls=[DELETE_50]))

    done = await reject(handle, paused.tools[0].tool_call_id, note="not today")

    assert done.status is RunStatus.COMPLETED
    [call] = done.tools
    assert call.state is CallState.REJECTED
    assert call.confirmed is False
    assert call.confirmation_note == "not today"
    assert worker.db.count("users") == 1000
    assert worker.db.effect_count() == 0
    [output] = tool_outputs_sent(model, message)
    assert output == "rejected by alice: not today"


async def test_batch_pauses_once_with_every_gated_call(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, delete_id, notify_id = await _paused_batch(
        client, worker, model, "Batch: pause once for two gated calls"
    )
    view = await current(handle)
    assert view.pause_count == 1
    assert sorted(t.tool_call_id for t in view.pending) == sorted([delete_id, notify_id])
    [ungated] = [t for t in view.tools if t.tool_name == "count_rows"]
    # The ungated call ran before the pause.
    assert ungated.state is CallState.EXECUTED
    assert ungated.result == "orders has 500 rows"
    assert worker.db.effect_count() == 0


async def test_batch_decided_in_one_request_resumes(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, delete_id, notify_id = await _paused_batch(
        client, worker, model, "Batch: both approved at once"
    )

    done = await approve(handle, delete_id, notify_id)

    assert done.status is RunStatus.COMPLETED
    assert worker.db.count("users") == 950
    [notification] = worker.db.notifications()
    assert notification.recipient == "ops"
    assert {t.state for t in done.tools} == {CallState.EXECUTED}


async def test_batch_decided_one_at_a_time_resumes_after_last(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, delete_id, notify_id = await _paused_batch(
        client, worker, model, "Batch: approved one at a time"
    )

    first = await approve(handle, delete_id)

    assert first.status is RunStatus.PAUSED
    assert [t.tool_call_id for t in first.pending] == [notify_id]
    assert worker.db.effect_count() == 0, "nothing runs before the whole batch is decided"

    done = await approve(handle, notify_id)

    assert done.status is RunStatus.COMPLETED
    assert worker.db.effect_count("delete_records") == 1
    assert worker.db.effect_count("send_notification") == 1


async def test_batch_one_approved_one_rejected(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    message = "Batch: approve the delete, reject the notification"
    handle, delete_id, notify_id = await _paused_batch(client, worker, model, message)

    done = await decide_and_wait(handle, {delete_id: True, notify_id: False})

    assert done.status is RunStatus.COMPLETED
    states = {t.tool_call_id: t.state for t in done.tools}
    assert states[delete_id] is CallState.EXECUTED
    assert states[notify_id] is CallState.REJECTED
    assert worker.db.count("users") == 950
    assert worker.db.notifications() == []
    outputs = tool_outputs_sent(model, message)
    assert outputs[0].startswith("Deleted 50 records from users")
    assert outputs[1] == "orders has 500 rows"
    assert outputs[2] == "rejected by alice"


async def test_atomic_request_with_one_invalid_entry_applies_none(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, delete_id, notify_id = await _paused_batch(
        client, worker, model, "Batch: one bad entry spoils the request"
    )

    await assert_refused(
        ErrorCode.UNKNOWN_CALL,
        RunClient(handle).decide(request({delete_id: True, "call_nope": True}), wait=WAIT),
    )

    await _assert_still_paused(handle, delete_id, notify_id)


async def test_second_turn_pauses_again(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    message = "Delete 50 users, then tell ops"
    handle, first = await start_paused(
        client, worker, model, message, Reply(calls=[DELETE_50]), Reply(calls=[NOTIFY])
    )
    assert first.pause_count == 1

    second = await approve(handle, first.tools[0].tool_call_id)

    assert second.status is RunStatus.PAUSED
    assert second.pause_count == 2
    [pending] = second.pending
    assert pending.tool_name == "send_notification"
    assert pending.turn == 2
    assert worker.db.count("users") == 950

    done = await approve(handle, pending.tool_call_id)

    assert done.status is RunStatus.COMPLETED
    assert len(worker.db.notifications()) == 1
    assert done.turns == 3


async def test_second_decision_for_same_call_refused(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, delete_id, notify_id = await _paused_batch(
        client, worker, model, "Replay: the same approval twice"
    )
    await approve(handle, delete_id)

    refusal = await assert_refused(
        ErrorCode.ALREADY_DECIDED,
        RunClient(handle).decide(request({delete_id: False}, BOB), wait=WAIT),
    )
    assert "already decided by alice" in refusal.message

    done = await approve(handle, notify_id)
    assert done.status is RunStatus.COMPLETED
    assert worker.db.effect_count("delete_records") == 1
    [delete] = [t for t in done.tools if t.tool_call_id == delete_id]
    assert [d.principal.id for d in delete.decisions] == ["alice"]


async def test_concurrent_identical_approvals_execute_once(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, delete_id, notify_id = await _paused_batch(
        client, worker, model, "Race: ten clicks on approve"
    )

    outcomes = await asyncio.gather(
        *(RunClient(handle).decide(request({delete_id: True}), wait=WAIT) for _ in range(10)),
        return_exceptions=True,
    )

    accepted = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, DecisionRefusedError)]
    assert len(accepted) == 1
    assert len(refused) == 9
    for err in refused:
        assert err.code is ErrorCode.ALREADY_DECIDED
    done = await approve(handle, notify_id)
    assert done.status is RunStatus.COMPLETED
    assert worker.db.effect_count("delete_records") == 1
    assert worker.db.count("users") == 950


# Without a wait the call returns once the decisions are accepted; a refusal
# comes back in the same answer and must not pass for an acceptance.
@pytest.mark.parametrize("wait", [WAIT, None], ids=["waiting", "not waiting"])
async def test_unknown_tool_call_refused(
    client: Client, worker: Worker, model: ScriptedModel, wait: timedelta | None
) -> None:
    handle, paused = await start_paused(
        client, worker, model, "Refuse an unknown call id", Reply(calls=[DELETE_50])
    )

    await assert_refused(
        ErrorCode.UNKNOWN_CALL, RunClient(handle).decide(request({"call_nope": True}), wait=wait)
    )

    await _assert_still_paused(handle, paused.tools[0].tool_call_id)


async def test_differing_args_echo_refused(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, paused = await start_paused(
        client, worker, model, "Refuse a decision on other arguments", Reply(calls=[DELETE_50])
    )
    call_id = paused.tools[0].tool_call_id
    edited = DecisionInput(
        tool_call_id=call_id, confirmed=True, tool_args={"table_name": "users", "count": 500}
    )

    await assert_refused(
        ErrorCode.ARGS_MISMATCH, RunClient(handle).decide(request([edited]), wait=WAIT)
    )

    await _assert_still_paused(handle, call_id)
    assert worker.db.effect_count() == 0


async def test_matching_args_echo_accepted(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, paused = await start_paused(
        client,
        worker,
        model,
        "Accept a decision that echoes the arguments",
        Reply(calls=[DELETE_50]),
    )
    call = paused.tools[0]
    echoed = DecisionInput(
        tool_call_id=call.tool_call_id,
        confirmed=True,
        tool_name="delete_records",
        tool_args={"count": 50, "table_name": "users"},
        args_digest=call.args_digest,
    )

    done = await decide_and_wait(handle, [echoed])

    assert done.status is RunStatus.COMPLETED
    assert worker.db.count("users") == 950


async def test_signal_decision_applies(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, paused = await start_paused(
        client, worker, model, "Decide through the signal", Reply(calls=[DELETE_50])
    )

    await handle.signal(
        AgentRunWorkflow.decide_signal, request({paused.tools[0].tool_call_id: True}, BOB)
    )
    done = await handle.result()

    assert done.status is RunStatus.COMPLETED
    assert worker.db.count("users") == 950
    [decision] = done.tools[0].decisions
    assert decision.principal.id == "bob"
    assert decision.source is DecisionSource.SIGNAL


async def test_invalid_signal_recorded_as_refused_and_changes_nothing(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, paused = await start_paused(
        client, worker, model, "Send a bad signal", Reply(calls=[DELETE_50])
    )
    call_id = paused.tools[0].tool_call_id

    await handle.signal(
        AgentRunWorkflow.decide_signal, request({call_id: True, "call_nope": True}, BOB)
    )

    async def refused_event() -> AuditEvent | None:
        trail = await audit_trail(handle)
        return next((e for e in trail if e.kind is AuditKind.DECISION_REFUSED), None)

    event = await eventually(refused_event, what="the refused signal in the audit trail")
    assert event.principal is not None
    assert event.principal.id == "bob"
    assert event.source is DecisionSource.SIGNAL
    assert event.data["code"] == ErrorCode.UNKNOWN_CALL.value
    await _assert_still_paused(handle, call_id)
    assert worker.db.effect_count() == 0
    # The run still takes a valid decision afterwards.
    done = await approve(handle, call_id, principal=ALICE)
    assert done.status is RunStatus.COMPLETED


FOUR_EYES = Call("four_eyes_delete", {"table_name": "sessions", "count": 20})


async def test_four_eyes_runs_after_second_distinct_approver(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, paused = await start_paused(
        client, worker, model, "Four eyes: two approvers", Reply(calls=[FOUR_EYES]), requester=CAROL
    )
    call_id = paused.tools[0].tool_call_id

    first = await approve(handle, call_id, principal=ALICE)

    assert first.status is RunStatus.PAUSED
    [pending] = first.pending
    assert [d.principal.id for d in pending.decisions] == ["alice"]
    assert worker.db.effect_count() == 0

    done = await approve(handle, call_id, principal=BOB)

    assert done.status is RunStatus.COMPLETED
    assert done.tools[0].state is CallState.EXECUTED
    assert worker.db.count("sessions") == 1980


async def test_four_eyes_same_approver_twice_refused(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, paused = await start_paused(
        client,
        worker,
        model,
        "Four eyes: one approver twice",
        Reply(calls=[FOUR_EYES]),
        requester=CAROL,
    )
    call_id = paused.tools[0].tool_call_id
    await approve(handle, call_id, principal=ALICE)

    await assert_refused(
        ErrorCode.ALREADY_APPROVED_BY,
        RunClient(handle).decide(request({call_id: True}, ALICE), wait=WAIT),
    )

    view = await current(handle)
    assert view.status is RunStatus.PAUSED
    assert len(view.pending[0].decisions) == 1


async def test_four_eyes_requester_cannot_approve(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, paused = await start_paused(
        client,
        worker,
        model,
        "Four eyes: requester approves",
        Reply(calls=[FOUR_EYES]),
        requester=CAROL,
    )
    call_id = paused.tools[0].tool_call_id

    await assert_refused(
        ErrorCode.SELF_APPROVAL,
        RunClient(handle).decide(request({call_id: True}, CAROL), wait=WAIT),
    )

    await _assert_still_paused(handle, call_id)


async def test_decision_without_required_role_refused(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, paused = await start_paused(
        client,
        worker,
        model,
        "Only a DBA may decide",
        Reply(calls=[Call("dba_delete", {"table_name": "users", "count": 5})]),
    )
    call_id = paused.tools[0].tool_call_id

    await assert_refused(
        ErrorCode.FORBIDDEN_ROLE,
        RunClient(handle).decide(request({call_id: True}, ALICE), wait=WAIT),
    )
    await _assert_still_paused(handle, call_id)

    dba = Principal(id="dana", roles=("dba",))
    done = await approve(handle, call_id, principal=dba)
    assert done.status is RunStatus.COMPLETED
    assert worker.db.count("users") == 995


async def test_decision_on_ungated_call_refused(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, delete_id, notify_id = await _paused_batch(
        client, worker, model, "Refuse a decision on a call that needs none"
    )
    view = await current(handle)
    [ungated_id] = call_ids(view, "count_rows")

    await assert_refused(
        ErrorCode.NOT_AWAITING, RunClient(handle).decide(request({ungated_id: False}), wait=WAIT)
    )

    await _assert_still_paused(handle, delete_id, notify_id)
