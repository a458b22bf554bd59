"""A run cancelled through Temporal while the model is answering ends CANCELLED, not ERROR.

The cancel reaches the model turn's activity first, and its cancellation
surfaces in the workflow as an ``ActivityError``; it is still the operator's
cancel, recorded as such.
"""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError

from countersign.client import RunClient, build_run_input
from countersign.models import AuditKind, RunStatus
from tests.agents_for_tests import AGENT_ID
from tests.scripted_openai import Reply, ScriptedModel
from tests.workflows.helpers import ALICE, OPERATORS, Worker, audit_trail, current, eventually


async def test_cancel_during_a_model_turn_ends_the_run_cancelled(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    message = "Answer slowly, then the operator cancels"
    # A slow model, so the cancel arrives while the turn waits on it; the
    # cancel does not wait for the answer.
    model.script(message, Reply(text="too late", delay=10))
    run = build_run_input(
        worker.settings, agent_id=AGENT_ID, message=message, requester=ALICE
    ).model_copy(update={"operator_ids": OPERATORS})
    started, _ = await RunClient.start(client, run, task_queue=worker.task_queue, wait=None)
    handle = started.handle

    async def asked() -> bool:
        return bool(model.requests_for(message))

    await eventually(asked, what="the model turn to be waiting on the model")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()

    assert isinstance(failure.value.cause, CancelledError)
    assert (await handle.describe()).status is WorkflowExecutionStatus.CANCELED
    view = await current(handle)
    assert view.status is RunStatus.CANCELLED
    assert view.error == "run cancelled through Temporal"
    assert view.tools == []
    trail = await audit_trail(handle)
    assert [e.kind for e in trail] == [AuditKind.RUN_STARTED, AuditKind.RUN_FINISHED]
    assert len(model.requests_for(message)) == 1, "the model turn was retried"
    history = await handle.fetch_history()
    scheduled = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert len(scheduled) == 1, "another activity ran after the cancel"
