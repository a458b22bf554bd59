"""Decisions while no worker serves the run: held, applied once, or answered as not accepted.

A decision sent while no worker runs is held by Temporal and applied when one
returns; one a worker takes after its sender stopped waiting is refused and
changes nothing; and a wait ends within its budget however the server answers.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.client import Interceptor as ClientInterceptor
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from countersign.client import NotAcceptedError, RunClient, build_run_input
from countersign.models import DECIDE_UPDATE, CallState, DecideRequest, RunStatus
from tests.conftest import make_settings, start_dev_server
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.workflows.conftest import SettingsFactory, WorkerFactory
from tests.workflows.helpers import (
    ALICE,
    Worker,
    request,
    running_worker,
    start_paused,
)

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


async def test_decisions_a_worker_takes_after_their_deadline_are_not_accepted(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    # As when a worker comes back after the API stopped waiting: the validator
    # refuses them, and the caller hears what its sender already answered
    # (not accepted, nothing applied), not a refusal of who sent them.
    handle, paused = await start_paused(
        client, worker, model, "Delete 7 users, too late", Reply(calls=[DELETE])
    )
    [pending] = paused.pending
    late = request({pending.tool_call_id: True}).model_copy(
        update={"not_after": datetime.now(UTC) - timedelta(seconds=1)}
    )
    events = len((await handle.fetch_history()).events)

    with pytest.raises(NotAcceptedError, match="stopped waiting"):
        await RunClient(handle).decide(late, wait=timedelta(seconds=30))

    assert len((await handle.fetch_history()).events) == events
    still = await RunClient(handle).view()
    assert still.status is RunStatus.PAUSED
    assert still.tools[0].state is CallState.AWAITING_CONFIRMATION
    assert worker.db.effect_count("delete_records") == 0


async def test_waits_end_within_budget_when_the_server_long_poll_ends_first(
    model: ScriptedModel, tmp_path: Path
) -> None:
    # The server answers a waiting update "admitted" when its long poll ends
    # (20 s by default, 1 s here) and the SDK sends it again: without a bound
    # on the whole call, a budget longer than the long poll is never kept.
    budget = timedelta(seconds=2)
    async with await start_dev_server(
        dynamic_config={"history.longPollExpirationInterval": '"1s"'}
    ) as env:
        settings = make_settings(model, tmp_path, "tq-nobody")
        run = build_run_input(
            settings, agent_id="data_manager", message="no worker polls", requester=ALICE
        )
        async with asyncio.timeout(20):
            with pytest.raises(NotAcceptedError, match="did not settle"):
                await RunClient.start(env.client, run, task_queue="tq-nobody", wait=budget)
            with pytest.raises(NotAcceptedError, match="no worker took"):
                await RunClient.of(env.client, run.run_id).decide(
                    request({"call_1": True}), wait=budget
                )


class SlowValidation(ClientInterceptor, Interceptor):
    """Holds each ``decide`` validation until its deadline has passed on the worker's clock.

    As a worker that replays a long history before it validates: the task
    started before the deadline, the validation runs after it. On the
    client, so the worker built on that client picks it up.
    """

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        """Wrap the workflow's inbound calls."""
        del input
        return _SlowInbound


class _SlowInbound(WorkflowInboundInterceptor):
    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        [request] = input.args
        if input.update == DECIDE_UPDATE and isinstance(request, DecideRequest):
            assert request.not_after is not None
            with workflow.unsafe.sandbox_unrestricted():
                while datetime.now(UTC) <= request.not_after:
                    time.sleep(0.01)
        super().handle_update_validator(input)


async def test_the_deadline_is_checked_when_the_validator_runs(
    client: Client, test_settings: SettingsFactory, model: ScriptedModel
) -> None:
    # The workflow task's start time would pass the decisions: the answer
    # after them could then reach a sender that already said "not applied".
    slow = Client(
        client.service_client,
        namespace=client.namespace,
        data_converter=client.data_converter,
        interceptors=[SlowValidation()],
    )
    async with running_worker(slow, test_settings()) as worker:
        handle, paused = await start_paused(
            client, worker, model, "Delete 7 users, slowly validated", Reply(calls=[DELETE])
        )
        [pending] = paused.pending
        soon = request({pending.tool_call_id: True}).model_copy(
            update={"not_after": datetime.now(UTC) + timedelta(milliseconds=500)}
        )

        with pytest.raises(NotAcceptedError, match="stopped waiting"):
            await RunClient(handle).decide(soon, wait=timedelta(seconds=30))

        assert (await RunClient(handle).view()).status is RunStatus.PAUSED
