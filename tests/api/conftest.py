"""The API in-process over ASGI, against the session's Temporal server and a real worker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client, Interceptor

from api.main import create_app
from countersign.settings import Settings
from tests.conftest import RunningWorker, make_settings, run_worker
from tests.scripted_openai import Call, Reply, ScriptedModel

SEED_MESSAGE = "Delete 50 old records from the users table"
SEED_ARGS = {"table_name": "users", "count": 50}
T = TypeVar("T")


TEST_AGENTS = "tests.api.agents_for_api"


def api_settings(
    model: ScriptedModel, tmp_path: Path, task_queue: str, **overrides: object
) -> Settings:
    """Settings for an API and a worker on one task queue, in development (no-auth) mode."""
    values: dict[str, object] = {
        "auth_disabled": True,
        "wait_budget": 20.0,
        "agent_modules": [TEST_AGENTS],
    }
    values.update(overrides)
    return make_settings(model, tmp_path, task_queue, **values)


@pytest.fixture
async def worker(
    client: Client, model: ScriptedModel, tmp_path: Path
) -> AsyncIterator[RunningWorker]:
    """A worker that also runs the API tests' agent (overrides the shared fixture)."""
    async with run_worker(client, api_settings(model, tmp_path, f"tq-{uuid.uuid4()}")) as running:
        yield running


@dataclass
class Api:
    """The app and an HTTP client on it."""

    app: FastAPI
    http: httpx.AsyncClient

    async def start_seed_run(self, model: ScriptedModel, **fields: str) -> dict[str, Any]:
        """Script the Data Manager's model turn and start its run (form-encoded)."""
        model.script(SEED_MESSAGE, Reply(calls=[Call("delete_records", SEED_ARGS)]))
        data = {"message": SEED_MESSAGE, "user_id": "test_user", "session_id": "test_session"}
        data.update(fields)
        response = await self.http.post("/agents/data_manager/runs", data=data)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["status"] == "PAUSED"
        return body

    async def start_run(
        self, model: ScriptedModel, message: str, *calls: Call, agent_id: str = "api_ops"
    ) -> dict[str, Any]:
        """Script one model turn with ``calls`` and start a run that pauses on them."""
        model.script(message, Reply(calls=list(calls)))
        response = await self.http.post(
            f"/agents/{agent_id}/runs",
            json={"message": message, "user_id": "test_user", "session_id": "s-" + message},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["status"] == "PAUSED", body
        return body

    async def continue_run(
        self,
        run: dict[str, Any],
        tools: list[dict[str, Any]] | str,
        *,
        user_id: str = "test_user",
        **fields: Any,
    ) -> httpx.Response:
        """``POST .../continue`` with a JSON body."""
        return await self.http.post(
            f"/agents/{run['agent_id']}/runs/{run['run_id']}/continue",
            json={"tools": tools, "user_id": user_id, **fields},
        )

    async def get_run(self, run_id: str, agent_id: str = "data_manager") -> dict[str, Any]:
        """The run body as GET returns it."""
        response = await self.http.get(f"/agents/{agent_id}/runs/{run_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def assert_error(response: httpx.Response, status_code: int, code: str) -> str:
    """Check an error response's status and body; return its detail."""
    assert response.status_code == status_code, response.text
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == code, body
    assert body["detail"]
    detail: str = body["detail"]
    return detail


def intercepted(client: Client, interceptor: Interceptor) -> Client:
    """``client``'s connection and converter, its calls seen by ``interceptor`` first."""
    return Client(
        client.service_client,
        namespace=client.namespace,
        data_converter=client.data_converter,
        interceptors=[interceptor],
    )


def api_for(settings: Settings, client: Client | None) -> Api:
    """An app sharing ``client`` (``None``: its lifespan connects), and an HTTP client on it."""
    app = create_app(settings, client=client)
    transport = httpx.ASGITransport(app=app)
    return Api(app, httpx.AsyncClient(transport=transport, base_url="http://api", timeout=30))


@pytest.fixture
async def api(
    client: Client, worker: RunningWorker, model: ScriptedModel, tmp_path: Path
) -> AsyncIterator[Api]:
    """The API on the test's worker (scripted model), in development mode."""
    running = api_for(worker.settings, client)
    async with running.http:
        yield running


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    within: float = 10.0,
    interval: float = 0.05,
) -> T:
    """Call ``probe`` until ``accept`` holds for its result or ``within`` seconds pass.

    For visibility, which is eventually consistent: the polling interval only
    paces the probes, the deadline bounds the wait.
    """
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {value!r}")
        await asyncio.sleep(interval)
