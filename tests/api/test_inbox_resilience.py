"""The inbox survives a listed run that cannot answer its state query."""

from __future__ import annotations

import logging
import uuid

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

from countersign import search_attributes as sa
from countersign.client import workflow_id
from countersign.models import Principal, RunInput, RunStatus, RunView
from tests.api.conftest import Api, eventually
from tests.scripted_openai import Call, Reply, ScriptedModel


@workflow.defn(name="AgentRunWorkflow", sandboxed=False)
class UnreadableRun:
    """Looks like a paused run in visibility; its worker fails every state query."""

    @workflow.run
    async def run(self, input: RunInput) -> None:
        workflow.upsert_search_attributes(
            [
                sa.AGENT_ID.value_set(input.agent_id),
                sa.USER_ID.value_set(input.user_id or ""),
                sa.STATUS.value_set(RunStatus.PAUSED.value),
                sa.PENDING_APPROVALS.value_set(1),
                sa.PENDING_TOOLS.value_set(["wire_money"]),
            ]
        )
        await workflow.wait_condition(lambda: False)

    @workflow.query(name="state")
    def state(self) -> RunView:
        raise RuntimeError("this run's state cannot be rebuilt")


async def test_list_approvals_skips_run_whose_query_fails(
    api: Api, client: Client, model: ScriptedModel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="countersign.api")
    user = f"inbox-{uuid.uuid4().hex[:8]}"
    broken_id = uuid.uuid4().hex
    queue = f"tq-broken-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[UnreadableRun]):
        broken = await client.start_workflow(
            "AgentRunWorkflow",
            RunInput(
                run_id=broken_id,
                agent_id="api_ops",
                message="broken",
                user_id=user,
                session_id="s",
                requester=Principal(id=user),
            ),
            id=workflow_id(broken_id),
            task_queue=queue,
        )
        model.script("a good one", Reply(calls=[Call("wire_money", {"amount": 5})]))
        good = await api.http.post(
            "/agents/api_ops/runs", data={"message": "a good one", "user_id": user}
        )
        assert good.status_code == 200, good.text

        async def inbox() -> dict[str, object]:
            response = await api.http.get("/approvals", params={"user_id": user})
            assert response.status_code == 200, response.text
            body: dict[str, object] = response.json()
            return body

        async def both_listed() -> int:
            query = f"CountersignUserId = '{user}' AND CountersignPendingApprovals > 0"
            return len([e async for e in client.list_workflows(query)])

        await eventually(both_listed, lambda n: n == 2)
        body = await inbox()
        await broken.terminate("test cleanup")
        await client.get_workflow_handle(workflow_id(good.json()["run_id"])).terminate("cleanup")

    approvals = body["approvals"]
    assert isinstance(approvals, list)
    assert [a["run_id"] for a in approvals] == [good.json()["run_id"]]
    assert any(
        "inbox skips" in r.getMessage() and broken_id in r.getMessage() for r in caplog.records
    )
