"""The Data Manager's two requests (api.http) through the API: pause, then approve and complete."""

from __future__ import annotations

import json

from tests.api.conftest import SEED_ARGS, SEED_MESSAGE, Api
from tests.conftest import RunningWorker
from tests.scripted_openai import ScriptedModel


async def test_create_run_pauses_with_pending_call(api: Api, model: ScriptedModel) -> None:
    body = await api.start_seed_run(model)
    assert body["agent_id"] == "data_manager"
    assert body["session_id"] == "test_session"
    assert body["user_id"] == "test_user"
    assert body["message"] == SEED_MESSAGE
    [tool] = body["tools"]
    assert tool["tool_name"] == "delete_records"
    assert tool["tool_args"] == SEED_ARGS
    assert tool["requires_confirmation"] is True
    assert tool["confirmed"] is None
    assert tool["state"] == "AWAITING_CONFIRMATION"
    assert len(tool["args_digest"]) == 64
    assert tool["expires_at"] is not None
    assert tool["approval_id"] == f"{body['run_id']}:{tool['tool_call_id']}"
    assert body["model"] == "scripted-model"
    assert body["demo_model"] is False
    assert body["usage"]["total_tokens"] > 0


async def test_continue_confirmed_completes_with_result(
    api: Api, model: ScriptedModel, worker: RunningWorker
) -> None:
    paused = await api.start_seed_run(model)
    call_id = paused["tools"][0]["tool_call_id"]
    tools = [
        {
            "tool_call_id": call_id,
            "tool_name": "delete_records",
            "tool_args": SEED_ARGS,
            "confirmed": True,
        }
    ]
    response = await api.http.post(
        f"/agents/data_manager/runs/{paused['run_id']}/continue",
        data={
            "tools": json.dumps(tools),
            "session_id": "test_session",
            "user_id": "test_user",
            "stream": "false",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "COMPLETED"
    [tool] = body["tools"]
    assert tool["confirmed"] is True
    assert tool["state"] == "EXECUTED"
    assert tool["result"].startswith("Deleted 50 records from users")
    assert tool["tool_call_error"] is False
    assert [d["principal_id"] for d in tool["decisions"]] == ["dev:test_user"]
    assert "Deleted 50 records from users" in body["content"]
    assert worker.db.count("users") == 950
    assert await api.get_run(paused["run_id"]) == body
