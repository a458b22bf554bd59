"""The offline demo model (what `make up` users get without a key) through the API."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from temporalio.client import Client

from countersign.demo_db import DemoDatabase
from tests.api.conftest import SEED_ARGS, SEED_MESSAGE, api_for, api_settings
from tests.scripted_openai import ScriptedModel
from worker import build_worker


async def test_demo_model_seed_flow(client: Client, model: ScriptedModel, tmp_path: Path) -> None:
    settings = api_settings(model, tmp_path, f"tq-demo-{uuid.uuid4()}", model_provider="demo")
    api = api_for(settings, client)
    async with build_worker(client, settings), api.http:
        created = await api.http.post(
            "/agents/data_manager/runs",
            data={"message": SEED_MESSAGE, "user_id": "test_user", "session_id": "demo"},
        )
        assert created.status_code == 200, created.text
        paused = created.json()
        assert paused["status"] == "PAUSED"
        assert paused["demo_model"] is True
        [call] = paused["tools"]
        assert call["tool_args"] == SEED_ARGS
        tools = [
            {
                "tool_call_id": call["tool_call_id"],
                "tool_name": "delete_records",
                "tool_args": SEED_ARGS,
                "confirmed": True,
            }
        ]
        continued = await api.http.post(
            f"/agents/data_manager/runs/{paused['run_id']}/continue",
            data={"tools": json.dumps(tools), "session_id": "demo", "user_id": "test_user"},
        )
    assert continued.status_code == 200, continued.text
    done = continued.json()
    assert done["status"] == "COMPLETED"
    assert done["content"]
    assert DemoDatabase(settings.demo_db_path).count("users") == 950
    assert model.requests == []
