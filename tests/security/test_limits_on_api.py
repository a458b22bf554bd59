"""The body size guard mounted on the real API: 413 on big bodies, SSE unharmed."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
from fastapi import FastAPI
from temporalio.client import Client

from api.main import create_app
from countersign.runs import workflow_id
from tests.conftest import RunningWorker, make_settings
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.security.live import serving

SEED_MESSAGE = "Delete 50 old records from the users table"


def guarded_app(
    client: Client, worker: RunningWorker, model: ScriptedModel, tmp_path: Path
) -> FastAPI:
    """The real API with a small body limit (``create_app`` mounts the guard)."""
    settings = make_settings(
        model, tmp_path, worker.task_queue, auth_disabled=True, max_body_bytes=4096
    )
    return create_app(settings, client)


async def test_body_limit_on_api_413_and_no_run_started(
    client: Client, worker: RunningWorker, model: ScriptedModel, tmp_path: Path
) -> None:
    session = uuid.uuid4().hex
    app = guarded_app(client, worker, model, tmp_path)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.post(
            "/agents/data_manager/runs",
            data={"message": "x" * 5000, "session_id": session},
        )
        runs = await http.get("/agents/data_manager/runs", params={"session_id": session})

    assert response.status_code == 413
    assert response.json() == {
        "detail": "request body exceeds 4096 bytes",
        "code": "payload_too_large",
    }
    assert runs.status_code == 200
    assert runs.json()["runs"] == []
    assert model.requests == []


async def test_body_limit_on_api_streams_sse(
    client: Client, worker: RunningWorker, model: ScriptedModel, tmp_path: Path
) -> None:
    model.script(
        SEED_MESSAGE, Reply(calls=[Call("delete_records", {"table_name": "users", "count": 50})])
    )
    app = guarded_app(client, worker, model, tmp_path)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.post(
            "/agents/data_manager/runs",
            data={"message": SEED_MESSAGE, "stream": "true", "user_id": "u"},
        )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "event: RunStarted" in response.text
    assert "event: RunPaused" in response.text
    # Leave no paused run behind for later tests' inbox listings.
    [run_id] = set(re.findall(r'"run_id":\s*"([0-9a-f]+)"', response.text))
    await client.get_workflow_handle(workflow_id(run_id)).terminate("test cleanup")
