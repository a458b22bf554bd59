"""The API loses Temporal (the dev server stops, then starts again on the same
port and data): meanwhile it answers 503 ``temporal_unavailable`` and changes
nothing; afterwards the same API process serves again, without a restart.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest

from countersign.demo_db import DemoDatabase
from countersign.models import CallState, RunStatus
from tests.faults import config
from tests.faults.stack import AGENT_ID, FaultStack, Part, poll_until
from tests.faults.verify import RUNS_QUERY
from tests.scripted_openai import Call, Reply, ScriptedModel

# Long enough that the paused call cannot expire while the server is away.
CONFIG = dataclasses.replace(config.current(), ttl_seconds=600.0)
RECOVERY_WITHIN = 60.0
TEMPORAL_UNAVAILABLE = "temporal_unavailable"

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["code"] == TEMPORAL_UNAVAILABLE, response.text
    assert response.headers["Retry-After"] == "5"


async def _history_length(stack: FaultStack) -> int:
    """Events in the history of the test's only run."""
    client = await stack.client()
    [execution] = [w async for w in client.list_workflows(RUNS_QUERY)]
    history = await client.get_workflow_handle(execution.id).fetch_history()
    return len(history.events)


async def test_api_answers_503_without_temporal_and_recovers_without_restart(
    model: ScriptedModel, tmp_path: Path
) -> None:
    stack = FaultStack(tmp_path, model.base_url, CONFIG)
    message = "Delete 7 users while Temporal goes away"
    delete = {"table_name": "users", "count": 7}
    model.script(message, Reply(calls=[Call("delete_records", delete)]))
    runs = f"/agents/{AGENT_ID}/runs"
    try:
        await stack.start()
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=90.0) as http:
            created = await http.post(runs, json={"message": message, "user_id": "alice"})
            assert created.status_code == 200, created.text
            paused = created.json()
            assert paused["status"] == RunStatus.PAUSED
            run_id = paused["run_id"]
            [call] = paused["tools"]
            events_before = await _history_length(stack)
            api = stack.processes[Part.API]
            api_pid = api.pid

            await stack.processes[Part.TEMPORAL].stop()

            approve: dict[str, Any] = {
                "tools": [{**call, "confirmed": True}],
                "user_id": "alice",
            }
            read, decide, create, health = await asyncio.gather(
                http.get(f"{runs}/{run_id}"),
                http.post(f"{runs}/{run_id}/continue", json=approve),
                http.post(runs, json={"message": message}),
                http.get("/health"),
            )
            for refused in (read, decide, create):
                _assert_unavailable(refused)
            assert health.status_code == 200
            assert health.json()["temporal"] == "unreachable"

            await stack.start([Part.TEMPORAL])

            async def serves_again() -> bool:
                response = await http.get(f"{runs}/{run_id}")
                return response.status_code == 200

            await poll_until(serves_again, within=RECOVERY_WITHIN, what="the API to serve again")
            assert api.alive
            assert api.pid == api_pid, "the API was restarted"

            # The decision refused with 503 changed nothing.
            still = (await http.get(f"{runs}/{run_id}")).json()
            assert still["status"] == RunStatus.PAUSED
            assert still["tools"][0]["state"] == CallState.AWAITING_CONFIRMATION
            assert still["tools"][0]["decisions"] == []
            assert await _history_length(stack) == events_before
            db = DemoDatabase(stack.settings.demo_db_path)
            assert db.effect_count() == 0

            done = await http.post(f"{runs}/{run_id}/continue", json=approve)
            assert done.status_code == 200, done.text
            assert done.json()["status"] == RunStatus.COMPLETED
            assert done.json()["tools"][0]["state"] == CallState.EXECUTED
            assert db.effect_count("delete_records") == 1
            assert db.count("users") == 1000 - 7
    finally:
        await stack.close()
