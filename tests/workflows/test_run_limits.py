"""The run under attack and at its limits, against a real Temporal server.

Handlers that cannot wedge a run, refusals that cannot grow its history, call
ids the run can always tell apart, caps that end a run cleanly before
Temporal's payload limit would wedge it, and a model turn that heartbeats.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.exceptions import ApplicationError

from countersign.client import RunClient, build_run_input
from countersign.limits import (
    MAX_DECISIONS_PER_REQUEST,
    MAX_ID_LENGTH,
    REFUSAL_ID_CHARS,
    REFUSAL_IDS_KEPT,
    REFUSAL_REASON_CHARS,
    RunOptions,
)
from countersign.models import (
    RECORD_REFUSAL_SIGNAL,
    WAIT_SETTLED_UPDATE,
    AuditKind,
    ChatMessage,
    DecideRequest,
    DecisionInput,
    ErrorCode,
    Principal,
    RefusedAttempt,
    RunState,
    RunStatus,
    RunView,
)
from tests.agents_for_tests import AGENT_ID
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.workflows.conftest import WorkerFactory
from tests.workflows.helpers import (
    ALICE,
    BOB,
    WAIT,
    RunHandle,
    Worker,
    approve,
    audit_trail,
    current,
    eventually,
    start_paused,
)
from workflows.run_limits import own_call_id, state_too_large, too_many_calls

DELETE = Call("delete_records", {"table_name": "users", "count": 5})


async def start_with(
    client: Client,
    worker: Worker,
    model: ScriptedModel,
    message: str,
    *replies: Reply,
    **options: object,
) -> tuple[RunHandle, RunView]:
    """Start a run with some of its ``RunOptions`` overridden; return it once settled."""
    model.script(message, *replies)
    run = build_run_input(worker.settings, agent_id=AGENT_ID, message=message, requester=ALICE)
    run.options = run.options.model_copy(update=options)
    started, view = await RunClient.start(client, run, task_queue=worker.task_queue, wait=WAIT)
    assert view is not None, f"run {run.run_id} did not settle within {WAIT}"
    return started.handle, view


async def history_size(handle: RunHandle) -> tuple[int, int]:
    """The run's history: its event count and its size in bytes, as Temporal stores it."""
    history = await handle.fetch_history()
    return len(history.events), sum(event.ByteSize() for event in history.events)


# ------------------------------------------------------------ waits


async def test_wait_settled_beyond_the_run_is_refused_and_the_run_still_completes(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    message = "Wait for a settle that never comes"
    handle, paused = await start_paused(
        client, worker, model, message, Reply(calls=[DELETE]), Reply(text="done")
    )
    before = await history_size(handle)

    # Guarded by a timeout only so that a regression fails instead of hanging.
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await asyncio.wait_for(
            handle.execute_update(WAIT_SETTLED_UPDATE, 10**9, result_type=RunView),
            WAIT.total_seconds(),
        )

    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == ErrorCode.SEQ_AHEAD.value
    assert str(paused.settle_seq) in cause.message
    assert await history_size(handle) == before, "a refused update must not enter history"
    assert (await current(handle)).status is RunStatus.PAUSED
    done = await approve(handle, paused.tools[0].tool_call_id)
    assert done.status is RunStatus.COMPLETED
    result = await asyncio.wait_for(handle.result(), WAIT.total_seconds())
    assert result.status is RunStatus.COMPLETED


async def test_a_waiter_of_the_current_settle_is_released_when_the_run_is_cancelled(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, paused = await start_paused(
        client, worker, model, "Wait, then the operator cancels", Reply(calls=[DELETE])
    )
    waiter = await handle.start_update(
        WAIT_SETTLED_UPDATE,
        paused.settle_seq,
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        result_type=RunView,
    )

    await handle.cancel()

    released = await asyncio.wait_for(waiter.result(), WAIT.total_seconds())
    assert released.status is RunStatus.CANCELLED


# --------------------------------------------------------- refusals


async def test_200_large_refusals_leave_the_run_paused_and_its_history_small(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    message = "Delete 5 users while someone keeps getting refused"
    handle, paused = await start_paused(
        client, worker, model, message, Reply(calls=[DELETE]), Reply(text="done")
    )
    events_before, bytes_before = await history_size(handle)
    # As the API builds it from a request naming 101 unknown ids of 2,400
    # characters (about 240 KB), with a long reason.
    attempt = RefusedAttempt(
        principal=BOB,
        tool_call_ids=[f"{n:03d}" + "x" * 2397 for n in range(101)],
        code=ErrorCode.UNKNOWN_CALL.value,
        reason="run has no tool call " + "x" * 10_000,
    )
    assert len(attempt.model_dump_json()) < 600

    for _ in range(200):
        await handle.signal(RECORD_REFUSAL_SIGNAL, attempt)

    async def all_signals_handled() -> bool:
        history = await handle.fetch_history()
        signals = sum(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in history.events
        )
        last = history.events[-1].event_type
        return signals == 200 and last == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED

    await eventually(all_signals_handled, what="the 200 refusals handled")
    events_after, bytes_after = await history_size(handle)
    growth = bytes_after - bytes_before
    assert growth < 200_000, f"history grew {growth} B"
    assert events_after > events_before
    view = await current(handle)
    assert view.status is RunStatus.PAUSED
    assert view.tools == paused.tools

    refused = [e for e in await audit_trail(handle) if e.kind is AuditKind.DECISION_REFUSED]
    [first] = refused
    assert first.principal == BOB
    assert first.data["tool_call_count"] == 101
    kept = first.data["tool_call_ids"]
    assert isinstance(kept, list) and len(kept) == REFUSAL_IDS_KEPT
    assert all(isinstance(i, str) and len(i) <= REFUSAL_ID_CHARS for i in kept)

    done = await approve(handle, paused.tools[0].tool_call_id)
    assert done.status is RunStatus.COMPLETED
    refused = [e for e in await audit_trail(handle) if e.kind is AuditKind.DECISION_REFUSED]
    assert [e.data.get("repeated") for e in refused] == [None, 199]
    assert refused[1].data["principal_id"] == BOB.id


# --------------------------------------------------------- call ids


async def test_a_reused_model_call_id_gets_the_runs_own_id(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    message = "Delete in two turns with a model that reuses call ids"
    first = Call("delete_records", {"table_name": "users", "count": 1}, call_id="call_0")
    second = Call("delete_records", {"table_name": "orders", "count": 2}, call_id="call_0")
    handle, paused = await start_paused(
        client,
        worker,
        model,
        message,
        Reply(calls=[first]),
        Reply(calls=[second]),
        Reply(text="done"),
    )
    assert [t.tool_call_id for t in paused.tools] == ["call_0"]

    again = await approve(handle, "call_0")

    assert again.status is RunStatus.PAUSED
    [pending] = again.pending
    assert pending.tool_call_id != "call_0"
    assert pending.tool_args == {"table_name": "orders", "count": 2}
    done = await approve(handle, pending.tool_call_id)
    assert done.status is RunStatus.COMPLETED
    # Two effects: each call had its own idempotency key.
    assert worker.db.effect_count() == 2
    # The model reads its results under the ids it gave.
    last = model.requests_for(message)[-1]
    outputs = [i["call_id"] for i in last["input"] if i.get("type") == "function_call_output"]
    assert outputs == ["call_0", "call_0"]


# -------------------------------------------------------------- caps


async def test_too_many_calls_in_one_turn_end_the_run_in_error(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, view = await start_with(
        client,
        worker,
        model,
        "Propose more calls than a turn may hold",
        Reply(calls=[DELETE, DELETE, DELETE]),
        max_calls_per_turn=2,
    )

    assert view.status is RunStatus.ERROR
    assert view.error is not None and "3 tool calls" in view.error
    assert "max_calls_per_turn" in view.error
    assert view.pending == []
    assert worker.db.effect_count() == 0
    result = await asyncio.wait_for(handle.result(), WAIT.total_seconds())
    assert result.status is RunStatus.ERROR


async def test_a_run_state_past_its_cap_ends_the_run_in_error_before_the_next_turn(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    message = "Produce a big report, then go on"
    _, view = await start_with(
        client,
        worker,
        model,
        message,
        Reply(calls=[Call("big_report", {})]),
        Reply(text="never asked"),
        max_state_bytes=20_000,
    )

    assert view.status is RunStatus.ERROR
    assert view.error is not None and "max_state_bytes" in view.error
    assert len(model.requests_for(message)) == 1, "no model turn after the cap"
    assert [t.tool_name for t in view.tools] == ["big_report"]


# --------------------------------------------------------- heartbeat


async def test_a_slow_model_turn_heartbeats_within_its_heartbeat_timeout(
    start_worker: WorkerFactory, client: Client, model: ScriptedModel
) -> None:
    message = "Answer slowly"
    async with start_worker(llm_heartbeat_timeout=1) as worker:
        # Three times the heartbeat timeout: without heartbeats the attempt
        # would time out and be retried.
        handle, view = await start_with(
            client, worker, model, message, Reply(text="slow but sure", delay=3)
        )

    assert view.status is RunStatus.COMPLETED
    assert view.content == "slow but sure"
    assert len(model.requests_for(message)) == 1, "the turn was retried"
    history = await handle.fetch_history()
    [scheduled] = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled.heartbeat_timeout.ToTimedelta() == timedelta(seconds=1)


# ------------------------------------------------- the pure limits, no server


def test_own_call_id_only_when_the_models_id_cannot_serve() -> None:
    assert own_call_id("call_0", set(), 0) is None
    assert own_call_id("call_0", {"call_0"}, 1) == "call_0~1"
    # Unique even against an id the model happened to choose.
    assert own_call_id("call_0", {"call_0", "call_0~1"}, 1) == "call_0~1.1"
    long_id = "c" * (MAX_ID_LENGTH + 1)
    own = own_call_id(long_id, set(), 3)
    assert own is not None and len(own) <= MAX_ID_LENGTH and own.endswith("~3")


def test_caps_name_the_option_that_stopped_the_run() -> None:
    options = RunOptions(max_calls_per_turn=2, max_state_bytes=10_000)
    assert too_many_calls(2, options) is None
    assert "max_calls_per_turn" in (too_many_calls(3, options) or "")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    state = RunState(created_at=now, updated_at=now)
    assert state_too_large(state, options) is None
    state.messages.append(ChatMessage(role="user", content="x" * 10_000))
    assert "max_state_bytes" in (state_too_large(state, options) or "")


def test_ids_names_and_decision_counts_are_capped_before_temporal() -> None:
    too_long = "x" * (MAX_ID_LENGTH + 1)
    fine = DecisionInput(tool_call_id="c" * MAX_ID_LENGTH, confirmed=True)
    for bad in (
        lambda: DecisionInput(tool_call_id=too_long, confirmed=True),
        lambda: DecisionInput(tool_call_id="c", confirmed=True, tool_name=too_long),
        lambda: DecisionInput(tool_call_id="c", confirmed=True, args_digest=too_long),
        lambda: Principal(id=too_long),
        lambda: DecideRequest(decisions=[fine] * (MAX_DECISIONS_PER_REQUEST + 1), principal=BOB),
    ):
        with pytest.raises(ValidationError):
            bad()
    DecideRequest(decisions=[fine] * MAX_DECISIONS_PER_REQUEST, principal=BOB)


def test_a_refused_attempt_is_a_bounded_summary_whoever_builds_it() -> None:
    attempt = RefusedAttempt(
        principal=BOB,
        tool_call_ids=["a" * 1000, "b", "c", "d"],
        code=ErrorCode.UNKNOWN_CALL.value,
        reason="r" * 10_000,
    )
    assert attempt.tool_call_count == 4
    assert len(attempt.tool_call_ids) == REFUSAL_IDS_KEPT
    assert attempt.tool_call_ids[0] == "a" * (REFUSAL_ID_CHARS - 1) + "…"
    assert attempt.tool_call_ids[1:] == ["b", "c"]
    assert len(attempt.reason) == REFUSAL_REASON_CHARS
    # What travels through Temporal loads back unchanged.
    assert RefusedAttempt.model_validate_json(attempt.model_dump_json()) == attempt
