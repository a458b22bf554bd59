"""A decision that reaches the run after its deadline but before its TTL timer fired: 410.

The ``decide`` validator refuses a call whose deadline has passed
(``now >= expires_at``) even while the call still awaits, because the timer
that would expire it has not been processed yet. To get there without
racing the clock, the run's worker is stopped while the API's decision is on
its way: the timer fires in the server with nobody to process it, the
decision is admitted, and only then a new worker takes the run. Its first
workflow task holds both; the validator runs before the workflow reads the
fired timer, so the call is still awaiting when it is refused.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowUpdateInput,
    WorkflowUpdateHandle,
)
from temporalio.service import RPCError

from api.main import create_app
from countersign.client import workflow_id
from countersign.models import DECIDE_UPDATE, AuditKind, ErrorCode
from tests.api.conftest import (
    SEED_ARGS,
    SEED_MESSAGE,
    api_settings,
    assert_error,
    eventually,
    intercepted,
)
from tests.conftest import run_worker
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.security.live import serving

TTL = timedelta(seconds=2)


class HeldDecisions(Interceptor):
    """Holds the API's ``decide`` updates until the test lets them go, and names them.

    The client the API is given carries it; everything else passes through.
    """

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        self.update_ids: list[str] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        """Wrap the client's outbound calls."""
        return _Holding(next, self)


class _Holding(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, held: HeldDecisions) -> None:
        super().__init__(next)
        self.held = held

    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        if input.update == DECIDE_UPDATE:
            # A known id, so the test can ask the server whether it admitted it.
            input.update_id = input.update_id or str(uuid.uuid4())
            self.held.update_ids.append(input.update_id)
            self.held.reached.set()
            await self.held.release.wait()
        return await super().start_workflow_update(input)


async def _timer_fired(client: Client, run_id: str) -> bool:
    history = await client.get_workflow_handle(workflow_id(run_id)).fetch_history()
    return any(e.event_type == EventType.EVENT_TYPE_TIMER_FIRED for e in history.events)


async def _admitted(client: Client, run_id: str, update_id: str) -> bool:
    try:
        await client.workflow_service.poll_workflow_execution_update(
            PollWorkflowExecutionUpdateRequest(
                namespace=client.namespace,
                update_ref=UpdateRef(
                    workflow_execution=WorkflowExecution(workflow_id=workflow_id(run_id)),
                    update_id=update_id,
                ),
                identity="test_expired_before_timer",
                wait_policy=WaitPolicy(
                    lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
                ),
            ),
            timeout=timedelta(seconds=2),
        )
    except RPCError:
        # Not found yet: the held request is still on its way.
        return False
    return True


async def test_decision_after_deadline_before_timer_is_gone(
    client: Client, model: ScriptedModel, tmp_path: Path
) -> None:
    settings = api_settings(model, tmp_path, f"tq-{uuid.uuid4()}", confirmation_ttl=TTL)
    held = HeldDecisions()
    app = create_app(settings, intercepted(client, held))
    model.script(SEED_MESSAGE, Reply(calls=[Call("delete_records", SEED_ARGS)]))

    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        first = run_worker(client, settings)
        running = await first.__aenter__()
        db = running.db
        try:
            created = await http.post(
                "/agents/data_manager/runs",
                data={"message": SEED_MESSAGE, "user_id": "test_user"},
            )
            assert created.status_code == 200, created.text
            paused = created.json()
            assert paused["status"] == "PAUSED"
            run_id, call = paused["run_id"], paused["tools"][0]
            users_before = db.count("users")
            decision = asyncio.create_task(
                http.post(
                    f"/agents/data_manager/runs/{run_id}/continue",
                    json={
                        "tools": [
                            {
                                "tool_call_id": call["tool_call_id"],
                                "tool_name": "delete_records",
                                "tool_args": SEED_ARGS,
                                "confirmed": True,
                            }
                        ],
                        "user_id": "test_user",
                    },
                )
            )
            # The API read the run (still awaiting) and is about to send the decision.
            await asyncio.wait_for(held.reached.wait(), 20)
        finally:
            await first.__aexit__(None, None, None)

        # Nobody processes the timer: it fires in the server and waits there.
        await _until(lambda: _timer_fired(client, run_id), "the TTL timer to fire")
        held.release.set()
        (update_id,) = held.update_ids
        await _until(lambda: _admitted(client, run_id, update_id), "the decision to be admitted")

        async with run_worker(client, settings):
            response = await asyncio.wait_for(decision, 30)
            assert_error(response, 410, ErrorCode.EXPIRED.value)

            async def read() -> dict[str, Any]:
                got = await http.get(f"/agents/data_manager/runs/{run_id}")
                assert got.status_code == 200, got.text
                body: dict[str, Any] = got.json()
                return body

            run = await eventually(read, lambda r: r["status"] != "PAUSED", within=20)
            audit = await http.get(f"/agents/data_manager/runs/{run_id}/audit")
        assert audit.status_code == 200, audit.text
        kinds = [e["kind"] for e in audit.json()["events"]]
        assert AuditKind.DECISION_RECORDED.value not in kinds
        assert AuditKind.TOOL_EXECUTED.value not in kinds
        assert kinds.count(AuditKind.APPROVAL_EXPIRED.value) == 1
        assert run["tools"][0]["state"] == "EXPIRED"
        assert run["tools"][0]["decisions"] == []
        assert db.count("users") == users_before
        assert db.effect_count() == 0


async def _until(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    async def check() -> bool:
        result: bool = await probe()
        return result

    try:
        await eventually(check, lambda ok: ok, within=20)
    except AssertionError as err:
        raise AssertionError(f"waiting for {what}: {err}") from None
