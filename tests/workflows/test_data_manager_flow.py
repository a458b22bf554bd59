"""The Data Manager flow end to end through the workflow: pause, approve, answer.

It runs against both model APIs the product speaks: Responses (the default)
and Chat Completions (``COUNTERSIGN_OPENAI_API=chat``).
"""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import Client

from countersign.models import CallState, RunStatus
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.workflows.conftest import WorkerFactory
from tests.workflows.helpers import approve, start_paused

SEED_MESSAGE = "Delete 50 old records from the users table"
SEED_CALL = Call("delete_records", {"table_name": "users", "count": 50})


def _tool_schemas(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Tool name to parameters schema, in either API's request shape."""
    out: dict[str, dict[str, Any]] = {}
    for entry in body["tools"]:
        function = entry.get("function", entry)
        out[function["name"]] = function["parameters"]
    return out


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_approve_executes_once_and_answers(
    client: Client, start_worker: WorkerFactory, model: ScriptedModel, api: str
) -> None:
    async with start_worker(openai_api=api) as worker:
        handle, paused = await start_paused(
            client, worker, model, SEED_MESSAGE, Reply(calls=[SEED_CALL]), agent_id="data_manager"
        )
        [call] = paused.tools
        assert call.tool_name == "delete_records"
        assert call.tool_args == {"table_name": "users", "count": 50}
        assert call.state is CallState.AWAITING_CONFIRMATION
        assert worker.db.count("users") == 1000

        done = await approve(handle, call.tool_call_id)

        assert done.status is RunStatus.COMPLETED
        assert worker.db.count("users") == 950
        assert worker.db.effect_count("delete_records") == 1
        assert "Deleted 50 records from users" in (done.content or "")
        assert done.tools[0].state is CallState.EXECUTED


@pytest.mark.parametrize(("api", "envelope"), [("responses", "input"), ("chat", "messages")])
async def test_model_request_carries_tool_schemas(
    client: Client, start_worker: WorkerFactory, model: ScriptedModel, api: str, envelope: str
) -> None:
    async with start_worker(openai_api=api) as worker:
        await start_paused(
            client, worker, model, SEED_MESSAGE, Reply(calls=[SEED_CALL]), agent_id="data_manager"
        )
    [body] = model.requests_for(SEED_MESSAGE)
    assert envelope in body, f"the worker did not use the {api} API"
    schemas = _tool_schemas(body)
    assert set(schemas) == {"delete_records", "send_notification"}
    delete = schemas["delete_records"]
    assert delete["required"] == ["table_name", "count"]
    assert delete["properties"]["count"]["type"] == "integer"
    assert delete["properties"]["table_name"]["type"] == "string"
    assert delete["additionalProperties"] is False


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_completed_run_records_token_usage(
    client: Client, start_worker: WorkerFactory, model: ScriptedModel, api: str
) -> None:
    async with start_worker(openai_api=api) as worker:
        handle, paused = await start_paused(
            client, worker, model, SEED_MESSAGE, Reply(calls=[SEED_CALL]), agent_id="data_manager"
        )
        done = await approve(handle, paused.tools[0].tool_call_id)
    # Two model turns (the call, then the answer); the scripted server bills
    # 11 input and 7 output tokens per turn.
    assert done.turns == 2
    assert done.usage.input_tokens == 22
    assert done.usage.output_tokens == 14
    assert done.usage.total_tokens == 36
    assert done.model == "scripted-model"
