"""The CLI against the real API (uvicorn on a free port), Temporal and a worker.

Development mode (auth disabled), as a person would run ``make up`` and then
``countersign runs list`` / ``approvals list`` / ``approve``.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from temporalio.client import Client

from api.main import create_app
from countersign.cli import main
from countersign.settings import Settings
from tests.conftest import RunningWorker, make_settings
from tests.scripted_openai import Call, Reply, ScriptedModel

SEED_MESSAGE = "Delete 50 old records from the users table"


async def cli(*argv: str) -> tuple[int, str]:
    """Run the CLI in a thread: it is synchronous and the API serves on this loop."""
    out = io.StringIO()
    code = await asyncio.to_thread(main, list(argv), out)
    return code, out.getvalue()


@asynccontextmanager
async def serving(settings: Settings, client: Client) -> AsyncIterator[str]:
    """The real API under uvicorn on a free loopback port; yields its URL."""
    config = uvicorn.Config(
        create_app(settings, client), host="127.0.0.1", port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 20
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def api_url(
    client: Client, worker: RunningWorker, model: ScriptedModel, tmp_path: Path
) -> AsyncIterator[str]:
    settings = make_settings(
        model, tmp_path, worker.task_queue, auth_disabled=True, wait_budget=20.0
    )
    async with serving(settings, client) as url:
        yield url


async def test_cli_lists_and_approves_a_paused_run(
    api_url: str,
    worker: RunningWorker,
    model: ScriptedModel,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model.script(
        SEED_MESSAGE, Reply(calls=[Call("delete_records", {"table_name": "users", "count": 50})])
    )
    # The Temporal server is shared by the whole suite: filter on this test's session.
    session = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        started = await http.post(
            "/agents/data_manager/runs",
            data={"message": SEED_MESSAGE, "user_id": "test_user", "session_id": session},
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

    await wait_listed(
        "runs", "PAUSED", "runs", "list", "--agent", "data_manager", "--session", session
    )
    [header, row] = [line for line in listed["runs"].splitlines() if line]
    assert header.split()[:3] == ["RUN", "AGENT", "STATUS"]
    assert row.split()[:4] == [run_id, "data_manager", "PAUSED", "1"]

    await wait_listed(
        "approvals", approval_id, "approvals", "list", "--agent", "data_manager", "--limit", "100"
    )
    [mine] = [line for line in listed["approvals"].splitlines() if approval_id in line]
    assert mine.split()[:4] == [
        approval_id,
        "data_manager",
        "delete_records",
        '{"count":50,"table_name":"users"}',
    ]

    code, out = await cli("approve", approval_id, "--note", "checked", "--api-url", api_url)

    assert code == 0
    assert out == f"approved {approval_id}; run is now COMPLETED\n"
    assert worker.db.count("users") == 950
    assert worker.db.effect_count("delete_records") == 1

    code, _ = await cli("approve", approval_id, "--api-url", api_url)
    assert code == 1
    assert capsys.readouterr().err.startswith("countersign: error: 409 ")
    assert worker.db.effect_count("delete_records") == 1


async def test_cli_with_api_key_against_authenticating_api(
    client: Client,
    worker: RunningWorker,
    model: ScriptedModel,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys = tmp_path / "api_keys.json"
    settings = make_settings(
        model, tmp_path, worker.task_queue, auth_disabled=False, api_keys_file=keys
    )
    code, key = await cli(
        "keys", "create", "--id", "vera", "--roles", "viewer", "--file", str(keys)
    )
    assert code == 0
    capsys.readouterr()

    async with serving(settings, client) as url:
        argv = ["runs", "list", "--agent", "data_manager", "--session", uuid.uuid4().hex]
        with_key = await cli(*argv, "--api-url", url, "--api-key", key.strip())
        without_key = await cli(*argv, "--api-url", url)
        refused = capsys.readouterr().err

    assert with_key == (0, "no runs\n")
    assert without_key[0] == 1
    assert refused.startswith("countersign: error: 401 unauthenticated: credentials required")
    assert refused.endswith("(pass --api-key or set COUNTERSIGN_API_KEY)\n")
