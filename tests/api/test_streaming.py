"""``stream=true``: Server-Sent Events named as in the AgentOS wire format, in order."""

from __future__ import annotations

import json
from typing import Any

from httpx_sse import aconnect_sse

from tests.api.conftest import SEED_ARGS, SEED_MESSAGE, Api
from tests.scripted_openai import Call, Reply, ScriptedModel


async def read_events(api: Api, url: str, data: dict[str, str]) -> list[tuple[str, Any]]:
    async with aconnect_sse(api.http, "POST", url, data=data) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return [(event.event, json.loads(event.data)) async for event in source.aiter_sse()]


async def test_stream_create_then_continue_events_in_order(api: Api, model: ScriptedModel) -> None:
    model.script(SEED_MESSAGE, Reply(calls=[Call("delete_records", SEED_ARGS)]))
    created = await read_events(
        api,
        "/agents/data_manager/runs",
        {"message": SEED_MESSAGE, "user_id": "test_user", "stream": "true"},
    )
    assert [name for name, _ in created] == ["RunStarted", "RunPaused"]
    started, paused = created[0][1], created[1][1]
    assert paused["run_id"] == started["run_id"]
    assert paused["status"] == "PAUSED"
    [call] = paused["tools"]

    tools = [{**call, "confirmed": True}]
    continued = await read_events(
        api,
        f"/agents/data_manager/runs/{paused['run_id']}/continue",
        {"tools": json.dumps(tools), "user_id": "test_user", "stream": "true"},
    )
    assert [name for name, _ in continued] == [
        "RunContinued",
        "ToolCallStarted",
        "ToolCallCompleted",
        "RunCompleted",
    ]
    assert continued[0][1]["tool_call_ids"] == [call["tool_call_id"]]
    assert continued[1][1]["tool"]["state"] == "EXECUTING"
    assert continued[2][1]["tool"]["result"].startswith("Deleted 50 records from users")
    final = continued[3][1]
    assert final["status"] == "COMPLETED"
    body = await api.get_run(paused["run_id"])
    assert {k: v for k, v in final.items() if k != "event"} == body


async def test_stream_ungated_calls_before_pause(api: Api, model: ScriptedModel) -> None:
    model.script(
        "look and resize",
        Reply(
            calls=[
                Call("lookup", {"key": "size"}),
                Call("resize_volume", {"volume": "v1", "size_gb": 10}),
            ]
        ),
    )
    events = await read_events(
        api, "/agents/api_ops/runs", {"message": "look and resize", "stream": "true"}
    )
    assert [name for name, _ in events] == [
        "RunStarted",
        "ToolCallStarted",
        "ToolCallCompleted",
        "RunPaused",
    ]
    assert events[2][1]["tool"]["tool_name"] == "lookup"


async def test_stream_refused_continue_is_http_error(api: Api, model: ScriptedModel) -> None:
    run = await api.start_seed_run(model)
    response = await api.http.post(
        f"/agents/data_manager/runs/{run['run_id']}/continue",
        data={
            "tools": json.dumps([{"tool_call_id": "call_nope", "confirmed": True}]),
            "stream": "true",
        },
    )
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_tool_call"
    assert await api.get_run(run["run_id"]) == run
