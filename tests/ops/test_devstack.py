"""``make up`` from a clean clone: the stack answers, runs the Data Manager flow, stops cleanly.

Each test picks free ports for Temporal gRPC, the Temporal UI and the API, so
it runs beside a developer's own ``make up`` and other test sessions.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devstack.demo import run_demo
from tests.ops.helpers import eventually, free_port, http_get_text

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent
UP_BANNER = "Countersign is up."


def hermetic_env(**values: str) -> dict[str, str]:
    """This process's environment without any project setting, plus ``values``."""
    prefixes = ("COUNTERSIGN_", "TEMPORAL_", "OPENAI_", "OTEL_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(values)
    return env


@dataclass
class Running:
    """A started process whose merged output is collected as it comes."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace"))

    async def wait_for_line(self, text: str, within: float) -> None:
        async def seen() -> bool:
            if self.process.returncode is not None:
                raise AssertionError(f"exited with {self.process.returncode}:\n{self.output}")
            return any(text in line for line in self.lines)

        await eventually(seen, within=within, what=f"{text!r} in the output")

    async def finish(self, within: float) -> int:
        code = await asyncio.wait_for(self.process.wait(), within)
        if self.reader is not None:
            await asyncio.wait_for(self.reader, 10)
        return code


async def start(command: Sequence[str], cwd: Path, env: dict[str, str]) -> Running:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    running = Running(process)
    running.reader = asyncio.create_task(running._read())
    return running


@pytest.fixture
def clean_clone(tmp_path: Path) -> Path:
    """The checkout's HEAD, cloned: what a newcomer gets, with no data/ or caches."""
    target = tmp_path / "countersign"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(PROJECT_ROOT), str(target)],
        check=True,
        timeout=60,
    )
    return target


@pytest.fixture
async def stopper() -> AsyncIterator[list[Running]]:
    """Processes a test started; whatever is still running at the end is killed."""
    started: list[Running] = []
    yield started
    for running in started:
        if running.process.returncode is None:
            os.killpg(running.process.pid, signal.SIGKILL)
            await running.process.wait()


def child_pid(parent: int) -> int:
    """The only child of ``parent`` (make runs one recipe line: the devstack)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


async def test_make_up_serves_seed_flow_and_stops_cleanly(
    clean_clone: Path, stopper: list[Running]
) -> None:
    api_port = free_port()
    env = hermetic_env(
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        COUNTERSIGN_DEV_UI_PORT=str(free_port()),
        COUNTERSIGN_API_PORT=str(api_port),
    )
    # This venv stands in for the one `make install` would build; -o keeps make
    # from re-installing into it because the clone's pyproject.toml is newer.
    command = ["make", "up", f"VENV={VENV}", "-o", f"{VENV}/.installed"]
    up = await start(command, clean_clone, env)
    stopper.append(up)
    await up.wait_for_line(UP_BANNER, within=90)
    base_url = f"http://127.0.0.1:{api_port}"
    health = await http_get_text(f"{base_url}/health")
    assert health is not None
    assert '"status":"ok"' in health.replace(" ", "")

    done = await asyncio.to_thread(run_demo, base_url, out=io.StringIO())
    [call] = done["tools"]
    assert call["tool_name"] == "delete_records"
    assert call["result"].startswith("Deleted 50 records from users")
    assert "demo model" in up.output
    assert "AUTHENTICATION IS DISABLED" in up.output

    # What `kill -INT` does to the stack; a terminal's Ctrl-C also interrupts
    # make itself, which then always reports 130, by make's own design.
    os.kill(child_pid(up.process.pid), signal.SIGINT)
    code = await up.finish(within=90)
    assert code == 0, up.output
    assert "Traceback" not in up.output
    assert "stopped cleanly" in up.output
    assert (clean_clone / "data" / "temporal.sqlite3").exists()
    assert await http_get_text(f"{base_url}/health") is None


async def test_devstack_stops_all_when_a_child_dies(tmp_path: Path, stopper: list[Running]) -> None:
    grpc_port = free_port()
    env = hermetic_env(
        TEMPORAL_ADDRESS=f"127.0.0.1:{grpc_port}",
        COUNTERSIGN_DEV_UI_PORT=str(free_port()),
        COUNTERSIGN_DEV_DB=str(tmp_path / "temporal.sqlite3"),
        COUNTERSIGN_DEMO_DB=str(tmp_path / "demo.sqlite3"),
    )
    command = [sys.executable, "-m", "devstack", "--no-api"]
    stack = await start(command, PROJECT_ROOT, env)
    stopper.append(stack)
    await stack.wait_for_line(UP_BANNER, within=60)
    match = re.search(r"started worker \(pid (\d+)\)", stack.output)
    assert match is not None, stack.output

    os.kill(int(match.group(1)), signal.SIGKILL)
    code = await stack.finish(within=60)
    assert code == 1
    assert f"worker (pid {match.group(1)}) exited with code -9" in stack.output
    assert "stopping temporal" in stack.output
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{grpc_port}")


async def test_devstack_stops_cleanly_on_sigterm(tmp_path: Path, stopper: list[Running]) -> None:
    env = hermetic_env(
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        COUNTERSIGN_DEV_UI_PORT=str(free_port()),
        COUNTERSIGN_DEV_DB=str(tmp_path / "temporal.sqlite3"),
        COUNTERSIGN_DEMO_DB=str(tmp_path / "demo.sqlite3"),
    )
    command = [sys.executable, "-m", "devstack", "--no-api"]
    stack = await start(command, PROJECT_ROOT, env)
    stopper.append(stack)
    await stack.wait_for_line(UP_BANNER, within=60)

    stack.process.send_signal(signal.SIGTERM)
    code = await stack.finish(within=60)
    assert code == 0, stack.output
    assert "Traceback" not in stack.output
    # Reverse order of start: the worker drains while the server is still up.
    assert stack.output.index("stopping worker") < stack.output.index("stopping temporal")
