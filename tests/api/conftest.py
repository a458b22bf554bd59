"""The API in-process over ASGI, against the session's Temporal server and a real worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client

from api.main import create_app
from countersign.settings import Settings
from tests.conftest import RunningWorker, make_settings
from tests.scripted_openai import Call, Reply, ScriptedModel

SEED_MESSAGE = "Delete 50 old records from the users table"
SEED_ARGS = {"table_name": "users", "count": 50}
T = TypeVar("T")


def api_settings(
    model: ScriptedModel, tmp_path: Path, task_queue: str, **overrides: object
) -> Settings:
    """Settings for an API talking to this test's worker, in development (no-auth) mode."""
    values: dict[str, object] = {"auth_disabled": True, "wait_budget": 20.0}
    values.update(overrides)
    return make_settings(model, tmp_path, task_queue, **values)


@dataclass
class Api:
    """The app and an HTTP client on it."""

    app: FastAPI
    http: httpx.AsyncClient

    async def start_seed_run(self, model: ScriptedModel, **fields: str) -> dict[str, Any]:
        """Script the seed's model turn and start the seed's run (form-encoded)."""
        model.script(SEED_MESSAGE, Reply(calls=[Call("delete_records", SEED_ARGS)]))
        data = {"message": SEED_MESSAGE, "user_id": "test_user", "session_id": "test_session"}
        data.update(fields)
        response = await self.http.post("/agents/data_manager/runs", data=data)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["status"] == "PAUSED"
        return body

    async def get_run(self, run_id: str) -> dict[str, Any]:
        """The run body as GET returns it."""
        response = await self.http.get(f"/agents/data_manager/runs/{run_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def api_for(settings: Settings, client: Client) -> Api:
    """An app sharing the session's client, and an HTTP client over ASGI."""
    app = create_app(settings, client=client)
    transport = httpx.ASGITransport(app=app)
    return Api(app, httpx.AsyncClient(transport=transport, base_url="http://api", timeout=30))


@pytest.fixture
async def api(
    client: Client, worker: RunningWorker, model: ScriptedModel, tmp_path: Path
) -> AsyncIterator[Api]:
    """The API on the test's worker (scripted model), in development mode."""
    running = api_for(api_settings(model, tmp_path, worker.task_queue), client)
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
