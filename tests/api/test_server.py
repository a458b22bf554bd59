"""``python -m api`` as users run it: the plain form posts of api.http, then a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from temporalio.client import Client

from tests.api.conftest import SEED_ARGS, eventually
from tests.conftest import RunningWorker
from tests.scripted_openai import Call, Reply, ScriptedModel

REPO = Path(__file__).parents[2]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# The api.http requests, verbatim (spaces and JSON unencoded, as AgentOS clients send them).
SEED_CREATE = (
    "message=Delete 50 old records from the users table&user_id=test_user&session_id=test_session"
)
SEED_CONTINUE = (
    'tools=[{"tool_call_id": "{tool_call_id}", "tool_name": "delete_records", '
    '"tool_args": {"table_name": "users", "count": 50}, "confirmed": true}]'
    "&session_id=test_session&user_id=test_user&stream=false"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ApiProcess:
    process: asyncio.subprocess.Process
    http: httpx.AsyncClient

    async def stop(self, sig: signal.Signals) -> tuple[int, str]:
        """Send ``sig``; return the exit status and everything written to stderr."""
        self.process.send_signal(sig)
        _, stderr = await asyncio.wait_for(self.process.communicate(), 30)
        assert self.process.returncode is not None
        return self.process.returncode, stderr.decode()


@asynccontextmanager
async def api_process(client: Client, task_queue: str) -> AsyncIterator[ApiProcess]:
    port = free_port()
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "COUNTERSIGN_TASK_QUEUE": task_queue,
        "COUNTERSIGN_AUTH_DISABLED": "true",
        "COUNTERSIGN_API_HOST": "127.0.0.1",
        "COUNTERSIGN_API_PORT": str(port),
        "COUNTERSIGN_WAIT_BUDGET": "PT20S",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)

    async def health() -> httpx.Response | None:
        try:
            return await http.get("/health")
        except httpx.TransportError:
            if process.returncode is not None:
                assert process.stderr is not None
                stderr = (await process.stderr.read()).decode()
                raise AssertionError(f"python -m api exited during start-up:\n{stderr}") from None
            return None

    try:
        ready = await eventually(health, lambda r: r is not None, within=30)
        assert ready is not None and ready.json()["temporal"] == "reachable"
        yield ApiProcess(process, http)
    finally:
        await http.aclose()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_seed_requests_verbatim_over_http(
    client: Client, worker: RunningWorker, model: ScriptedModel
) -> None:
    model.script(
        "Delete 50 old records from the users table",
        Reply(calls=[Call("delete_records", SEED_ARGS)]),
    )
    async with api_process(client, worker.task_queue) as api:
        created = await api.http.post(
            "/agents/data_manager/runs", content=SEED_CREATE.encode(), headers=FORM
        )
        assert created.status_code == 200, created.text
        paused = created.json()
        assert paused["status"] == "PAUSED"
        [call] = paused["tools"]
        assert call["requires_confirmation"] is True
        assert call["tool_args"] == SEED_ARGS

        body = SEED_CONTINUE.replace("{tool_call_id}", call["tool_call_id"])
        continued = await api.http.post(
            f"/agents/data_manager/runs/{paused['run_id']}/continue",
            content=body.encode(),
            headers=FORM,
        )
        assert continued.status_code == 200, continued.text
        done = continued.json()
        assert done["status"] == "COMPLETED"
        assert done["tools"][0]["result"].startswith("Deleted 50 records from users")
        assert worker.db.count("users") == 950

        status, stderr = await api.stop(signal.SIGTERM)
    assert status == 0, stderr
    assert "Traceback" not in stderr, stderr


async def test_shutdown_cancels_pending_waits(client: Client) -> None:
    # No worker polls this queue: the create request waits until shutdown cancels it.
    queue = f"tq-nobody-{uuid.uuid4()}"
    async with api_process(client, queue) as api:
        pending = asyncio.create_task(
            api.http.post("/agents/data_manager/runs", data={"message": "never answered"})
        )

        async def started() -> list[str]:
            return [e.id async for e in client.list_workflows(f"TaskQueue = '{queue}'")]

        [workflow_id] = await eventually(started, lambda ids: len(ids) == 1)
        status, stderr = await api.stop(signal.SIGINT)
        response = await pending
    await client.get_workflow_handle(workflow_id).terminate("test cleanup")
    assert status == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert response.status_code == 503
    assert response.json()["code"] == "shutting_down"
