"""The CLI against the real API (uvicorn on a free port), Temporal and a worker.

Development mode (auth disabled), as a person would run ``make up`` and then
``countersign runs list`` / ``approvals list`` / ``approve``.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from temporalio.client import Client

from api.main import create_app
from countersign.cli import main
from tests.conftest import RunningWorker, make_settings
from tests.scripted_openai import Call, Reply, ScriptedModel

SEED_MESSAGE = "Delete 50 old records from the users table"


async def cli(*argv: str) -> tuple[int, str]:
    """Run the CLI in a thread: it is synchronous and the API serves on this loop."""
    out = io.StringIO()
    code = await asyncio.to_thread(main, list(argv), out)
    return code, out.getvalue()


@pytest.fixture
async def api_url(
    client: Client, worker: RunningWorker, model: ScriptedModel, tmp_path: Path
) -> AsyncIterator[str]:
    settings = make_settings(
        model, tmp_path, worker.task_queue, auth_disabled=True, wait_budget=20.0
    )
    config = uvicorn.Config(
        create_app(settings, client), host="127.0.0.1", port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 20
    while not server.started:
        if serving.done() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def test_cli_lists_and_approves_a_paused_run(
    api_url: str,
    worker: RunningWorker,
    model: ScriptedModel,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model.script(
        SEED_MESSAGE, Reply(calls=[Call("delete_records", {"table_name": "users", "count": 50})])
    )
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        started = await http.post(
            "/agents/data_manager/runs",
            data={"message": SEED_MESSAGE, "user_id": "test_user", "session_id": "s1"},
        )
    assert started.status_code == 200, started.text
    run_id = started.json()["run_id"]
    [call] = started.json()["tools"]
    approval_id = f"{run_id}:{call['tool_call_id']}"

    listed: dict[str, str] = {}

    async def refresh(key: str, *argv: str) -> None:
        code, out = await cli(*argv, "--api-url", api_url)
        assert code == 0
        listed[key] = out

    async def wait_listed(key: str, needle: str, *argv: str) -> None:
        await refresh(key, *argv)
        deadline = time.monotonic() + 20
        while needle not in listed[key]:
            assert time.monotonic() < deadline, f"{needle} never listed: {listed[key]}"
            await asyncio.sleep(0.1)
            await refresh(key, *argv)

    await wait_listed("runs", "PAUSED", "runs", "list", "--agent", "data_manager")
    [header, row] = [line for line in listed["runs"].splitlines() if line]
    assert header.split()[:3] == ["RUN", "AGENT", "STATUS"]
    assert row.split()[:4] == [run_id, "data_manager", "PAUSED", "1"]

    await wait_listed("approvals", approval_id, "approvals", "list")
    assert "delete_records" in listed["approvals"]
    assert '{"count":50,"table_name":"users"}' in listed["approvals"]

    code, out = await cli("approve", approval_id, "--note", "checked", "--api-url", api_url)

    assert code == 0
    assert out == f"approved {approval_id}; run is now COMPLETED\n"
    assert worker.db.count("users") == 950
    assert worker.db.effect_count("delete_records") == 1

    code, _ = await cli("approve", approval_id, "--api-url", api_url)
    assert code == 1
    assert capsys.readouterr().err.startswith("countersign: error: 409 ")
    assert worker.db.effect_count("delete_records") == 1
