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
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from api.main import create_app
from cli.main import main
from countersign.demo_db import DemoDatabase
from tests.conftest import RunningWorker, make_settings
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.security.live import serving
from worker import build_worker

SEED_MESSAGE = "Delete 50 old records from the users table"


async def cli(*argv: str) -> tuple[int, str]:
    """Run the CLI in a thread: it is synchronous and the API serves on this loop."""
    out = io.StringIO()
    code = await asyncio.to_thread(main, list(argv), out)
    return code, out.getvalue()


AGENT = "cli_operator"


@dataclass
class LiveApi:
    """The API under uvicorn and the worker behind it."""

    url: str
    db: DemoDatabase


@pytest.fixture
async def live_api(client: Client, model: ScriptedModel, tmp_path: Path) -> AsyncIterator[LiveApi]:
    # The conftest ``worker`` fixture's way, plus an agent of this test's own: the
    # session's Temporal server keeps other tests' paused runs, which the inbox
    # would list (and may fail to query once their workers are gone).
    settings = make_settings(
        model,
        tmp_path,
        f"tq-{uuid.uuid4()}",
        auth_disabled=True,
        wait_budget=20.0,
        agent_modules=["tests.cli.cli_agent"],
    )
    async with build_worker(client, settings), serving(create_app(settings, client)) as url:
        yield LiveApi(url, DemoDatabase(settings.demo_db_path))


async def test_cli_lists_and_approves_a_paused_run(
    live_api: LiveApi,
    model: ScriptedModel,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api_url = live_api.url
    model.script(
        SEED_MESSAGE, Reply(calls=[Call("delete_records", {"table_name": "users", "count": 50})])
    )
    # The Temporal server is shared by the whole suite: filter on this test's session.
    session = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        started = await http.post(
            f"/agents/{AGENT}/runs",
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

    await wait_listed("runs", "PAUSED", "runs", "list", "--agent", AGENT, "--session", session)
    [header, row] = [line for line in listed["runs"].splitlines() if line]
    assert header.split()[:3] == ["RUN", "AGENT", "STATUS"]
    assert row.split()[:4] == [run_id, AGENT, "PAUSED", "1"]

    await wait_listed("approvals", approval_id, "approvals", "list", "--agent", AGENT)
    [mine] = [line for line in listed["approvals"].splitlines() if approval_id in line]
    assert mine.split()[:4] == [
        approval_id,
        AGENT,
        "delete_records",
        '{"count":50,"table_name":"users"}',
    ]

    code, out = await cli("approve", approval_id, "--note", "checked", "--api-url", api_url)

    assert code == 0
    assert out == f"approved {approval_id}; run is now COMPLETED\n"
    assert live_api.db.count("users") == 950
    assert live_api.db.effect_count("delete_records") == 1

    code, _ = await cli("approve", approval_id, "--api-url", api_url)
    assert code == 1
    assert capsys.readouterr().err.startswith("countersign: error: 409 ")
    assert live_api.db.effect_count("delete_records") == 1


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

    async with serving(create_app(settings, client)) as url:
        argv = ["runs", "list", "--agent", "data_manager", "--session", uuid.uuid4().hex]
        with_key = await cli(*argv, "--api-url", url, "--api-key", key.strip())
        without_key = await cli(*argv, "--api-url", url)
        refused = capsys.readouterr().err

    assert with_key == (0, "no runs\n")
    assert without_key[0] == 1
    assert refused.startswith("countersign: error: 401 unauthenticated: credentials required")
    assert refused.endswith("(pass --api-key or set COUNTERSIGN_API_KEY)\n")
