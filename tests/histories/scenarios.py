"""The runs ``python -m tests.histories.record`` records, one function each.

Each scenario drives a run through the product's client against the recorder's
worker and scripted model, and returns its handle once the run has closed. Add
one here (and to ``SCENARIOS``) for each new shape of run, then record it: see
``docs/histories.md``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from temporalio.client import Client, WorkflowFailureError

from countersign.client import DecisionRefusedError, RunClient, build_run_input
from countersign.models import (
    DECIDE_SIGNAL,
    RECORD_REFUSAL_SIGNAL,
    AuditKind,
    DecisionSource,
    ErrorCode,
    RefusedAttempt,
    RunStatus,
    RunView,
)
from tests.agents_for_tests import AGENT_ID
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.webhook_receiver import Receiver, webhook_receiver
from tests.workflows.helpers import (
    ALICE,
    BOB,
    CAROL,
    OPERATORS,
    WAIT,
    RunHandle,
    Worker,
    approve,
    audit_trail,
    current,
    decide_and_wait,
    eventually,
    reject,
    request,
    running_worker,
    start_paused,
    start_settled,
)

DELETE_50 = Call("delete_records", {"table_name": "users", "count": 50})
NOTIFY = Call("send_notification", {"recipient": "ops", "message": "cleanup done"})
COUNT = Call("count_rows", {"table_name": "orders"})
# One past the default max_calls_per_turn (32). A literal, not read from
# RunOptions: the code from before the cap records the same run with it.
CALLS_PAST_THE_CAP = 33


@dataclass(frozen=True)
class Recording:
    """What a scenario runs against."""

    client: Client
    worker: Worker
    model: ScriptedModel


@dataclass(frozen=True)
class Scenario:
    """A run to record, whether it must cross a continue-as-new, and whether it
    is meant to end in ``ERROR`` (a run that hits a cap); any other ``ERROR``
    is a scenario that went wrong, and is not recorded."""

    run: Callable[[Recording], Awaitable[RunHandle]]
    continues_as_new: bool = False
    ends_in_error: bool = False


async def _approve(r: Recording) -> RunHandle:
    handle, paused = await start_paused(
        r.client, r.worker, r.model, "History: approve", Reply(calls=[DELETE_50])
    )
    await approve(handle, paused.tools[0].tool_call_id)
    return handle


async def _reject(r: Recording) -> RunHandle:
    handle, paused = await start_paused(
        r.client, r.worker, r.model, "History: reject", Reply(calls=[DELETE_50])
    )
    await reject(handle, paused.tools[0].tool_call_id, note="not now")
    return handle


async def _expire(r: Recording) -> RunHandle:
    quick = Call("quick_delete", {"table_name": "users", "count": 10})
    handle, _ = await start_paused(
        r.client, r.worker, r.model, "History: expire", Reply(calls=[quick])
    )
    await handle.result()
    return handle


async def _two_batches(r: Recording) -> RunHandle:
    """A batch of two gated calls and an ungated one, decided one at a time,
    then a second pause in the next turn."""
    handle, first = await start_paused(
        r.client,
        r.worker,
        r.model,
        "History: two batches",
        Reply(calls=[DELETE_50, COUNT, NOTIFY]),
        Reply(calls=[Call("delete_records", {"table_name": "orders", "count": 5})]),
    )
    delete_id, notify_id = (t.tool_call_id for t in first.pending)
    await approve(handle, delete_id)
    second = await decide_and_wait(handle, {notify_id: False})
    await approve(handle, second.pending[0].tool_call_id)
    return handle


async def _four_eyes(r: Recording) -> RunHandle:
    four_eyes = Call("four_eyes_delete", {"table_name": "sessions", "count": 20})
    handle, paused = await start_paused(
        r.client,
        r.worker,
        r.model,
        "History: four eyes",
        Reply(calls=[four_eyes]),
        requester=CAROL,
    )
    call_id = paused.tools[0].tool_call_id
    await approve(handle, call_id, principal=ALICE)
    await approve(handle, call_id, principal=BOB)
    return handle


async def _cancel_batch(r: Recording) -> RunHandle:
    """A cancel_run expiry that denies the other call of its batch (patched path)."""
    purge = Call("purge_or_cancel", {"table_name": "sessions", "count": 5})
    handle, _ = await start_paused(
        r.client, r.worker, r.model, "History: cancel batch", Reply(calls=[purge, DELETE_50])
    )
    await handle.result()
    return handle


async def _operator_cancel(r: Recording) -> RunHandle:
    """A paused run cancelled through Temporal (patched path)."""
    handle, _ = await start_paused(
        r.client, r.worker, r.model, "History: operator cancel", Reply(calls=[DELETE_50])
    )
    await handle.cancel()
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    return handle


async def _model_turn_cancel(r: Recording) -> RunHandle:
    """A run cancelled through Temporal while the model is still answering.

    Before ``cancel-in-model-turn`` the cancelled model turn read as a failed
    one: the run ended ``ERROR`` and the workflow completed. With it the run
    ends ``CANCELLED`` and the workflow closes cancelled.
    """
    message = "History: model turn cancel"
    # Longer than the cancel takes to arrive; the cancel does not wait for it.
    r.model.script(message, Reply(text="too late", delay=10))
    run = build_run_input(
        r.worker.settings, agent_id=AGENT_ID, message=message, requester=ALICE
    ).model_copy(update={"operator_ids": OPERATORS})
    started, _ = await RunClient.start(r.client, run, task_queue=r.worker.task_queue, wait=None)
    handle = started.handle
    await eventually(
        lambda: _asked(r.model, message), what="the model turn to be waiting on the model"
    )
    await handle.cancel()
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    return handle


async def _asked(model: ScriptedModel, message: str) -> bool:
    return bool(model.requests_for(message))


@contextlib.asynccontextmanager
async def _webhook_worker(r: Recording, fail_first: int) -> AsyncIterator[tuple[Worker, Receiver]]:
    """A worker whose runs push webhooks to a receiver that fails its first requests."""
    async with webhook_receiver(fail_first=fail_first) as receiver:
        settings = r.worker.settings.model_copy(
            update={
                "webhook_urls": [receiver.url],
                # The receiver checks no signature; signing is not in the history.
                "webhook_allow_unsigned": True,
                "temporal_task_queue": f"{r.worker.task_queue}-webhooks-{uuid.uuid4()}",
            }
        )
        async with running_worker(r.client, settings) as worker:
            yield worker, receiver


async def _webhooks(r: Recording) -> RunHandle:
    """Approve with webhook receivers configured: deliveries are activities."""
    async with _webhook_worker(r, fail_first=1) as (worker, _):
        handle, paused = await start_paused(
            r.client, worker, r.model, "History: webhooks", Reply(calls=[DELETE_50])
        )
        await approve(handle, paused.tools[0].tool_call_id)
        await handle.result()
    return handle


async def _signal_decision(handle: RunHandle, call_id: str, *, confirmed: bool) -> None:
    """Decide through ``decide_signal``: no caller stays attached to the run."""
    await handle.signal(DECIDE_SIGNAL, request({call_id: confirmed}, source=DecisionSource.SIGNAL))


async def _continue_as_new(r: Recording) -> RunHandle:
    """Two pauses before a continue-as-new, one after it, in the carried run.

    The second pause is approved by signal, so no caller is attached at the
    next turn and the run continues as new there, carrying decided calls.
    """
    second = Call("delete_records", {"table_name": "orders", "count": 5})
    third = Call("delete_records", {"table_name": "sessions", "count": 7})
    handle, first = await start_paused(
        r.client,
        r.worker,
        r.model,
        "History: continue as new",
        Reply(calls=[DELETE_50, COUNT]),
        Reply(calls=[second]),
        Reply(calls=[third]),
    )
    paused = await approve(handle, first.pending[0].tool_call_id)
    await _signal_decision(handle, paused.pending[0].tool_call_id, confirmed=True)
    carried = await eventually(
        lambda: _paused_in_a_later_run(handle, first_run_id=handle.result_run_id),
        what="the run to pause again after continuing as new",
    )
    await approve(handle, carried.pending[0].tool_call_id)
    await handle.result()
    return handle


async def _paused_in_a_later_run(handle: RunHandle, first_run_id: str | None) -> RunView | None:
    description = await handle.describe()
    if description.run_id == first_run_id:
        return None
    view = await current(handle)
    return view if view.status is RunStatus.PAUSED else None


async def _webhooks_in_flight(r: Recording) -> RunHandle:
    """Deliveries still retrying at a pause and when continue-as-new is suggested.

    The receiver refuses its first three requests (retries after 1 s, 2 s, 4 s),
    so the first pause's delivery is in flight while the run is approved, moves
    on and pauses again; the continue-as-new waits until the deliveries are done.
    """
    second = Call("delete_records", {"table_name": "orders", "count": 5})
    async with _webhook_worker(r, fail_first=3) as (worker, receiver):
        handle, first = await start_paused(
            r.client,
            worker,
            r.model,
            "History: webhooks in flight",
            Reply(calls=[DELETE_50]),
            Reply(calls=[second]),
            Reply(calls=[COUNT]),
            Reply(calls=[COUNT]),
        )
        # Signals, not updates: a caller waiting on an update would hold the
        # continue-as-new off by itself.
        await _signal_decision(handle, first.tools[0].tool_call_id, confirmed=True)
        paused = await eventually(
            lambda: _paused_again(handle, pause_count=2), what="the second pause"
        )
        # Requested, decided, requested: once through, nothing holds the
        # continue-as-new off any more.
        await eventually(lambda: _received(receiver, 3), what="the first three deliveries")
        await _signal_decision(handle, paused.pending[0].tool_call_id, confirmed=True)
        await handle.result()
    return handle


async def _updates_continue_as_new(r: Recording) -> RunHandle:
    """A run driven through the updates the API sends: ``wait_settled``, then ``decide``.

    An attached update used to hold the continue-as-new off until the run
    settled again, so this run crossed the suggestion with callers attached
    and continued as new only after the last pause, decided by signal. With
    ``release-waiters-for-continue-as-new`` the run answers the attached
    callers with its current view at the first suggestion and continues as new
    there; the client attaches again to the new execution.
    """
    message = "History: updates continue as new"
    second = Call("delete_records", {"table_name": "orders", "count": 5})
    r.model.script(
        message,
        Reply(calls=[COUNT]),
        Reply(calls=[COUNT]),
        Reply(calls=[DELETE_50]),
        Reply(calls=[second]),
        Reply(calls=[COUNT]),
        Reply(text="done"),
    )
    run = build_run_input(
        r.worker.settings, agent_id=AGENT_ID, message=message, requester=ALICE
    ).model_copy(update={"operator_ids": OPERATORS})
    started, _ = await RunClient.start(r.client, run, task_queue=r.worker.task_queue, wait=WAIT)
    # Not pinned to the first execution: decisions go to the one that waits.
    latest = RunClient.of(r.client, run.run_id)
    first = await eventually(lambda: _paused_again(latest.handle, 1), what="the first pause")
    await latest.decide(request({first.pending[0].tool_call_id: True}), wait=WAIT)
    paused = await eventually(lambda: _paused_again(latest.handle, 2), what="the second pause")
    # By signal: the code before the patch continues as new only once no
    # update is attached, and every scenario here must cross one.
    await _signal_decision(latest.handle, paused.pending[0].tool_call_id, confirmed=True)
    await started.handle.result()
    return started.handle


async def _received(receiver: Receiver, count: int) -> bool:
    return len(receiver.events) >= count


async def _paused_again(handle: RunHandle, pause_count: int) -> RunView | None:
    view = await current(handle)
    paused = view.status is RunStatus.PAUSED and view.pause_count >= pause_count
    return view if paused else None


async def _reused_call_ids(r: Recording) -> RunHandle:
    """The model names two calls ``call_0``, in two turns.

    A decision naming ``call_0`` finds the first, already executed call, so it
    is refused, and the second call is denied when its TTL runs out. Recorded
    before ``unique-call-ids`` (the second call kept ``call_0``) and after (it
    has the run's own id, ``call_0~1``, while the model still reads ``call_0``).
    """
    quick = Call("quick_delete", {"table_name": "users", "count": 10}, call_id="call_0")
    handle, _ = await start_paused(
        r.client,
        r.worker,
        r.model,
        "History: reused call ids",
        Reply(calls=[Call(DELETE_50.name, DELETE_50.args, call_id="call_0")]),
        Reply(calls=[quick]),
    )
    paused = await approve(handle, "call_0")
    assert paused.status is RunStatus.PAUSED, paused
    # Refused: the decision finds the first call_0, already executed. Which
    # check refuses it first (and its code) is not what this records.
    try:
        await RunClient(handle).decide(request({"call_0": True}, principal=BOB), wait=WAIT)
    except DecisionRefusedError:
        pass
    else:
        raise RuntimeError(
            "the second call_0 was decided: record the fixed shape as a new scenario"
        )
    await handle.result()
    return handle


async def _too_many_calls(r: Recording) -> RunHandle:
    """One model turn proposes more calls than ``max_calls_per_turn`` allows.

    With ``run-caps`` the run ends in ERROR before running any of them; the
    code before it ran them all (ungated, so nobody has to decide) and asked
    the model again.
    """
    handle, _ = await start_settled(
        r.client,
        r.worker,
        r.model,
        "History: too many calls",
        Reply(calls=[COUNT] * CALLS_PAST_THE_CAP),
    )
    await handle.result()
    return handle


async def _state_too_large(r: Recording) -> RunHandle:
    """A tool's output grows the run state past ``max_state_bytes``.

    With ``run-caps`` the run ends in ERROR before the next model turn. Only
    this cap's new branch is pinned: the code before the cap read no
    ``max_state_bytes``, so a run of that code meets the cap's default (1 MB)
    only with a history far too large to keep here.
    """
    message = "History: state too large"
    r.model.script(message, Reply(calls=[Call("big_report", {})]))
    run = build_run_input(r.worker.settings, agent_id=AGENT_ID, message=message, requester=ALICE)
    run = run.model_copy(
        update={
            "operator_ids": OPERATORS,
            "options": run.options.model_copy(update={"max_state_bytes": 20_000}),
        }
    )
    started, _ = await RunClient.start(r.client, run, task_queue=r.worker.task_queue, wait=WAIT)
    await started.handle.result()
    return started.handle


async def _signal_refused(r: Recording) -> RunHandle:
    """A refused decide signal and a refusal the API records, then a signal approval."""
    handle, paused = await start_paused(
        r.client, r.worker, r.model, "History: signal refused", Reply(calls=[DELETE_50])
    )
    call_id = paused.tools[0].tool_call_id
    # A call the run does not have: refused, recorded, nothing else changes.
    await handle.signal(
        DECIDE_SIGNAL, request({"call_unknown": True}, source=DecisionSource.SIGNAL)
    )
    await handle.signal(
        RECORD_REFUSAL_SIGNAL,
        RefusedAttempt(
            principal=CAROL,
            source=DecisionSource.API,
            tool_call_ids=[call_id],
            code=ErrorCode.FORBIDDEN_ROLE.value,
            reason="recorded by the recorder as the API would",
        ),
    )
    await eventually(lambda: _refusals(handle, 2), what="both refusals in the audit trail")
    await handle.signal(
        DECIDE_SIGNAL, request({call_id: True}, principal=BOB, source=DecisionSource.SIGNAL)
    )
    await handle.result()
    return handle


async def _signal_not_operator(r: Recording) -> RunHandle:
    """A decide signal from a principal who is not an operator is refused; an operator's counts."""
    handle, paused = await start_paused(
        r.client, r.worker, r.model, "History: signal not operator", Reply(calls=[DELETE_50])
    )
    call_id = paused.tools[0].tool_call_id
    await handle.signal(
        DECIDE_SIGNAL, request({call_id: True}, principal=CAROL, source=DecisionSource.SIGNAL)
    )
    await eventually(lambda: _refusals(handle, 1), what="the refusal in the audit trail")
    await handle.signal(
        DECIDE_SIGNAL, request({call_id: True}, principal=BOB, source=DecisionSource.SIGNAL)
    )
    await handle.result()
    return handle


async def _refusals(handle: RunHandle, count: int) -> bool:
    trail = await audit_trail(handle)
    return sum(e.kind is AuditKind.DECISION_REFUSED for e in trail) >= count


SCENARIOS: dict[str, Scenario] = {
    "operator_cancel": Scenario(_operator_cancel),
    "webhooks": Scenario(_webhooks),
    "approve": Scenario(_approve),
    "reject": Scenario(_reject),
    "expire": Scenario(_expire),
    "two_batches": Scenario(_two_batches),
    "four_eyes": Scenario(_four_eyes),
    "cancel_batch": Scenario(_cancel_batch),
    "model_turn_cancel": Scenario(_model_turn_cancel),
    "reused_call_ids": Scenario(_reused_call_ids),
    "too_many_calls": Scenario(_too_many_calls, ends_in_error=True),
    "state_too_large": Scenario(_state_too_large, ends_in_error=True),
    "signal_refused": Scenario(_signal_refused),
    "signal_not_operator": Scenario(_signal_not_operator),
    "continue_as_new": Scenario(_continue_as_new, continues_as_new=True),
    "webhooks_in_flight": Scenario(_webhooks_in_flight, continues_as_new=True),
    "updates_continue_as_new": Scenario(_updates_continue_as_new, continues_as_new=True),
}
