"""No worker on the run's task queue: the API answers within its budget, nothing is lost."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from temporalio.client import Client

from tests.api.conftest import SEED_MESSAGE, api_for, api_settings, assert_error, eventually
from tests.scripted_openai import Call, Reply, ScriptedModel
from worker import build_worker

DELETE_50 = Reply(calls=[Call("delete_records", {"table_name": "users", "count": 50})])


async def test_create_run_without_worker_answers_202_and_runs_when_one_starts(
    client: Client, model: ScriptedModel, tmp_path: Path
) -> None:
    settings = api_settings(model, tmp_path, f"tq-idle-{uuid.uuid4()}", wait_budget=1.0)
    model.script(SEED_MESSAGE, DELETE_50)
    api = api_for(settings, client)
    async with api.http:
        response = await api.http.post(
            "/agents/data_manager/runs", data={"message": SEED_MESSAGE, "user_id": "test_user"}
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "RUNNING"
        assert body["tools"] == []

        async with build_worker(client, settings):
            paused = await eventually(
                lambda: api.http.get(f"/agents/data_manager/runs/{body['run_id']}"),
                lambda r: r.status_code == 200 and r.json()["status"] == "PAUSED",
            )

    assert paused.json()["tools"][0]["tool_args"] == {"table_name": "users", "count": 50}


async def test_continue_without_worker_is_503_and_changes_nothing(
    client: Client, model: ScriptedModel, tmp_path: Path
) -> None:
    settings = api_settings(model, tmp_path, f"tq-gone-{uuid.uuid4()}")
    model.script(SEED_MESSAGE, DELETE_50)
    api = api_for(settings, client)
    async with api.http:
        async with build_worker(client, settings):
            created = await api.http.post(
                "/agents/data_manager/runs", data={"message": SEED_MESSAGE, "user_id": "u"}
            )
        run = created.json()
        assert run["status"] == "PAUSED"
        call_id = run["tools"][0]["tool_call_id"]

        response = await api.http.post(
            f"/agents/data_manager/runs/{run['run_id']}/continue",
            json={"tools": [{"tool_call_id": call_id, "confirmed": True}], "user_id": "u"},
        )

        assert_error(response, 503, "worker_unavailable")
        assert response.headers["retry-after"] == "5"
        async with build_worker(client, settings):
            again: httpx.Response = await api.http.get(f"/agents/data_manager/runs/{run['run_id']}")
    assert again.json()["status"] == "PAUSED"
    assert again.json()["tools"][0]["state"] == "AWAITING_CONFIRMATION"
