"""Streams end cleanly for every outcome, read event by event over a real socket.

The API runs under uvicorn; the client reads with ``httpx`` streaming and
``httpx_sse`` as events arrive (the ASGI test transport would buffer the whole
response). Each stream's last event says how it ended: ``RunCompleted``,
``RunPaused``, ``RunError``, ``RunCancelled`` or ``RunInProgress``, and the
connection then closes without a protocol error.

A run is held RUNNING by making the scripted model answer 503 with
``Retry-After: 300``: the model activity waits five minutes before its retry,
so the run cannot settle until the test cancels it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse
from temporalio.client import Client
from temporalio.service import RPCError

from api.main import create_app
from countersign.client import workflow_id
from tests.api.conftest import SEED_ARGS, SEED_MESSAGE, eventually
from tests.conftest import RunningWorker
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.security.live import serving

Served = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def served(client: Client, worker: RunningWorker) -> Served:
    """Open the API (development mode, settings overridable) on uvicorn; yield a client."""

    @asynccontextmanager
    async def open_api(**overrides: object) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(worker.settings.model_copy(update=overrides), client)
        async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
            yield http

    return open_api


def hold_model(model: ScriptedModel) -> None:
    """Keep the next run's first model turn from answering for five minutes."""
    model.fail_next(503, **{"retry-after": "300"})


def data(event: ServerSentEvent) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(event.data)
    return body


async def read_all(
    http: httpx.AsyncClient, url: str, form: dict[str, str]
) -> list[ServerSentEvent]:
    """Every event of one stream, checking framing: ids 1, 2, 3... and the event in the data."""
    async with aconnect_sse(http, "POST", url, data=form) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        events = [event async for event in source.aiter_sse()]
    assert [e.id for e in events] == [str(n) for n in range(1, len(events) + 1)]
    assert all(data(e)["event"] == e.event for e in events)
    return events


async def cancel(http: httpx.AsyncClient, agent_id: str, run_id: str) -> dict[str, Any]:
    response = await http.post(f"/agents/{agent_id}/runs/{run_id}/cancel")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_completed_without_pause(served: Served, model: ScriptedModel) -> None:
    model.script("say hi", Reply(text="hi there"))
    async with served() as http:
        events = await read_all(
            http, "/agents/data_manager/runs", {"message": "say hi", "stream": "true"}
        )
    assert [e.event for e in events] == ["RunStarted", "RunCompleted"]
    final = data(events[-1])
    assert final["status"] == "COMPLETED"
    assert final["content"] == "hi there"
    assert final["run_id"] == data(events[0])["run_id"]


async def test_paused_then_continued_to_completion(
    served: Served, model: ScriptedModel, worker: RunningWorker
) -> None:
    model.script(SEED_MESSAGE, Reply(calls=[Call("delete_records", SEED_ARGS)]))
    async with served() as http:
        created = await read_all(
            http, "/agents/data_manager/runs", {"message": SEED_MESSAGE, "stream": "true"}
        )
        assert [e.event for e in created] == ["RunStarted", "RunPaused"]
        paused = data(created[-1])
        [call] = paused["tools"]
        continued = await read_all(
            http,
            f"/agents/data_manager/runs/{paused['run_id']}/continue",
            {"tools": json.dumps([{**call, "confirmed": True}]), "stream": "true"},
        )
    assert [e.event for e in continued] == [
        "RunContinued",
        "ToolCallStarted",
        "ToolCallCompleted",
        "RunCompleted",
    ]
    assert worker.db.count("users") == 950


async def test_error(served: Served, model: ScriptedModel) -> None:
    # A 400 from the model is not retried: the run ends ERROR.
    model.fail_next(400)
    async with served() as http:
        events = await read_all(
            http, "/agents/data_manager/runs", {"message": "fail", "stream": "true"}
        )
    assert [e.event for e in events] == ["RunStarted", "RunError"]
    final = data(events[-1])
    assert final["status"] == "ERROR"
    assert "HTTP 400" in final["error"]


async def test_cancelled_while_streaming_with_pings(served: Served, model: ScriptedModel) -> None:
    hold_model(model)
    async with (
        served(sse_ping_interval=timedelta(seconds=0.1)) as http,
        aconnect_sse(
            http, "POST", "/agents/data_manager/runs", data={"message": "held", "stream": "true"}
        ) as source,
    ):
        lines = source.response.aiter_lines()
        seen: list[str] = []
        # RunStarted arrives while the run is still held, then pings keep the
        # silent connection alive until something happens.
        async for line in lines:
            seen.append(line)
            if line.startswith(":"):
                break
        started = json.loads(next(s for s in seen if s.startswith("data:"))[5:])
        assert started["event"] == "RunStarted"
        cancelled = await cancel(http, "data_manager", started["run_id"])
        rest = [line async for line in lines]
    events = [
        line.removeprefix("event:").strip() for line in seen + rest if line.startswith("event:")
    ]
    final = json.loads([line for line in rest if line.startswith("data:")][-1][5:])
    assert final["run_id"] == started["run_id"]
    assert final["status"] == cancelled["status"]
    # A cancel that lands during a model turn is recorded by the workflow as
    # ERROR today (the activity's cancellation reaches it first); either way
    # the stream's last event names the run's final status.
    assert events == [
        "RunStarted",
        {"CANCELLED": "RunCancelled", "ERROR": "RunError"}[final["status"]],
    ]


async def test_wait_budget_reached(served: Served, model: ScriptedModel) -> None:
    hold_model(model)
    async with served(wait_budget=timedelta(seconds=0.5)) as http:
        events = await read_all(
            http, "/agents/data_manager/runs", {"message": "slow", "stream": "true"}
        )
        assert [e.event for e in events] == ["RunStarted", "RunInProgress"]
        assert data(events[-1])["status"] == "RUNNING"
        # The run goes on after the stream; cancelling ends it (and cleans up).
        await cancel(http, "data_manager", data(events[0])["run_id"])


async def test_wait_budget_reached_without_stream_is_202(
    served: Served, model: ScriptedModel
) -> None:
    hold_model(model)
    async with served(wait_budget=timedelta(seconds=0.5)) as http:
        response = await http.post("/agents/data_manager/runs", data={"message": "slow"})
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "RUNNING"
        await cancel(http, "data_manager", response.json()["run_id"])


async def test_shutdown_ends_the_stream_with_an_error_event(
    client: Client, worker: RunningWorker, model: ScriptedModel
) -> None:
    hold_model(model)
    app = create_app(worker.settings, client)
    async with (
        serving(app) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as http,
        aconnect_sse(
            http, "POST", "/agents/data_manager/runs", data={"message": "held", "stream": "true"}
        ) as source,
    ):
        events = source.aiter_sse()
        started = await anext(events)
        assert started.event == "RunStarted"
        handle = client.get_workflow_handle(workflow_id(data(started)["run_id"]))

        async def exists() -> bool:
            try:
                await handle.describe()
            except RPCError:
                return False
            return True

        # Once the run is started (and held), the stream waits for it to settle.
        await eventually(exists, bool)
        # What the API does on SIGTERM: the waits in flight are cancelled.
        app.state.countersign.waits.cancel_all()
        rest = [event async for event in events]
        await handle.cancel()
    assert [e.event for e in rest] == ["RunError"]
    error = data(rest[-1])
    assert error["code"] == "shutting_down"
    assert error["content"] == error["detail"]
