"""The stack as real processes that a test can SIGKILL and start again.

The Temporal dev server runs with the product's own command line
(``devstack.temporal_server.server_command``) on a SQLite file, so its state
survives a kill; the worker is ``python worker.py`` and the API ``python -m
api``, each configured only through its environment, as in production. Every
process runs in a session of its own, so a kill reaches it and its children
and nothing else.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from countersign.settings import Settings
from countersign.temporal import connect
from devstack.stack import child_environment
from devstack.temporal_server import DevStackSettings, server_command
from tests.faults.config import FaultConfig
from tests.scripted_openai import free_port

logger = logging.getLogger("tests.faults")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AGENT_ID = "data_manager"
STARTUP_TIMEOUT = 60.0
# Variables of the product and its libraries that must not leak in from the
# developer's shell: the children get exactly what the test sets.
FOREIGN_PREFIXES = ("COUNTERSIGN_", "TEMPORAL_", "OPENAI_", "OTEL_")


class Part(StrEnum):
    """A process of the stack, in the order they start."""

    TEMPORAL = "temporal"
    WORKER = "worker"
    API = "api"


START_ORDER = (Part.TEMPORAL, Part.WORKER, Part.API)


async def poll_until(
    probe: Callable[[], Awaitable[bool]], *, within: float, what: str, interval: float = 0.1
) -> float:
    """Poll ``probe`` until it answers true; return the seconds it took.

    Raises:
        AssertionError: ``within`` seconds passed first; the message names ``what``.
    """
    started = time.monotonic()
    while True:
        if await probe():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class Process:
    """One child process, started again after each kill with the same command."""

    part: Part
    command: list[str]
    log: Path
    process: asyncio.subprocess.Process | None = None
    starts: int = 0

    @property
    def alive(self) -> bool:
        """Whether it runs now."""
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int:
        """Process id of the current incarnation."""
        assert self.process is not None, f"{self.part} never started"
        return self.process.pid

    async def start(self, env: Mapping[str, str]) -> None:
        """Start it, its output appended to its log file."""
        assert not self.alive, f"{self.part} is already running"
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n=== start {self.starts}: {' '.join(self.command)}\n".encode())
            out.flush()
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                cwd=PROJECT_ROOT,
                env=dict(env),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )

    async def kill(self) -> None:
        """SIGKILL its process group: no handler runs, nothing is flushed."""
        if not self.alive:
            return
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()

    async def stop(self, within: float = 30.0) -> None:
        """SIGINT (a clean stop), then SIGKILL if it lingers."""
        if not self.alive:
            return
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            await self.kill()


def hermetic_environment(values: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without project settings, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
    env.update(values)
    return env


@dataclass
class FaultStack:
    """Temporal dev server, worker and API on free ports, with their data in ``root``.

    Args:
        root: Directory for the SQLite files and the logs.
        model_url: Base URL of the scripted OpenAI-compatible server.
        config: TTL and timeouts of this fault run.
    """

    root: Path
    model_url: str
    config: FaultConfig
    settings: Settings = field(init=False)
    processes: dict[Part, Process] = field(init=False)
    env: dict[str, str] = field(init=False)
    _client: Client | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        api_port = free_port()
        self.settings = Settings.model_validate(
            {
                "temporal_address": f"127.0.0.1:{free_port()}",
                "api_host": "127.0.0.1",
                "api_port": api_port,
                "demo_db_path": self.root / "demo.sqlite3",
            }
        )
        dev = DevStackSettings.model_validate(
            {"ui_port": free_port(), "db_filename": self.root / "temporal.sqlite3"}
        )
        values = {
            "TEMPORAL_ADDRESS": self.settings.temporal_address,
            "TEMPORAL_NAMESPACE": self.settings.temporal_namespace,
            "COUNTERSIGN_API_HOST": self.settings.api_host,
            "COUNTERSIGN_API_PORT": str(api_port),
            "COUNTERSIGN_DEMO_DB": str(self.settings.demo_db_path),
            "COUNTERSIGN_API_KEYS_FILE": str(self.root / "api_keys.json"),
            # Development mode, as the README describes for a local stack.
            "COUNTERSIGN_AUTH_DISABLED": "true",
            # The load is one principal making many requests on purpose.
            "COUNTERSIGN_RATE_LIMIT_PER_MINUTE": "0",
            # Requests answer 202 soon when the worker is down, so the load
            # keeps moving; the run goes on regardless.
            "COUNTERSIGN_WAIT_BUDGET": "5",
            "COUNTERSIGN_MODEL": "openai",
            "OPENAI_API_KEY": "scripted",
            "OPENAI_BASE_URL": self.model_url,
            "OPENAI_MODEL": "scripted-model",
            "COUNTERSIGN_LLM_RETRY_INITIAL_INTERVAL": "0.2",
            "COUNTERSIGN_LOG_LEVEL": "INFO",
            **self.config.environment(),
        }
        self.env = child_environment(self.settings, hermetic_environment(values))
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        commands = {
            Part.TEMPORAL: server_command(self.settings, dev),
            Part.WORKER: [sys.executable, "worker.py"],
            Part.API: [sys.executable, "-m", "api"],
        }
        self.processes = {
            part: Process(part, command, logs / f"{part}.log") for part, command in commands.items()
        }
        # An interrupted session (Ctrl-C) must not leave servers holding ports.
        atexit.register(self.kill_now)

    @property
    def api_url(self) -> str:
        """Base URL of the API."""
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    async def client(self) -> Client:
        """The test's own Temporal client (it reconnects by itself after a restart)."""
        if self._client is None:
            self._client = await connect(self.settings)
        return self._client

    async def start(self, parts: Iterable[Part] = START_ORDER) -> None:
        """Start ``parts`` in stack order, each answering before the next starts."""
        wanted = set(parts)
        for part in START_ORDER:
            if part not in wanted:
                continue
            process = self.processes[part]
            await process.start(self.env)
            await self._ready(process)

    async def kill(self, parts: Iterable[Part]) -> None:
        """SIGKILL ``parts`` at the same moment."""
        await asyncio.gather(*(self.processes[p].kill() for p in parts))

    async def close(self) -> None:
        """Kill whatever still runs: its data is thrown away, a clean stop buys nothing."""
        await self.kill(START_ORDER)

    def kill_now(self) -> None:
        """SIGKILL whatever still runs, without an event loop (at interpreter exit)."""
        for process in self.processes.values():
            if process.alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        """The end of each log, for a failure message."""
        out = []
        for process in self.processes.values():
            text = process.log.read_text(errors="replace") if process.log.exists() else ""
            out.append(f"--- {process.part} ---\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(out)

    async def _ready(self, process: Process) -> None:
        probes: dict[Part, Callable[[], Awaitable[bool]]] = {
            Part.TEMPORAL: self.temporal_answers,
            Part.WORKER: lambda: self._worker_polls(process.pid),
            Part.API: self.api_answers,
        }
        probe = probes[process.part]

        async def alive_and_ready() -> bool:
            if not process.alive:
                raise AssertionError(f"{process.part} exited:\n{self.log_tail()}")
            return await probe()

        await poll_until(alive_and_ready, within=STARTUP_TIMEOUT, what=f"{process.part} to answer")

    async def temporal_answers(self) -> bool:
        """Whether the Temporal frontend answers a health check."""
        try:
            client = await self.client()
            return await client.service_client.check_health(timeout=_seconds(2))
        except (RPCError, RuntimeError):
            return False

    async def _worker_polls(self, pid: int) -> bool:
        client = await self.client()
        try:
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=self.settings.temporal_namespace,
                    task_queue=TaskQueue(name=self.settings.temporal_task_queue),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
        except RPCError:
            return False
        # The SDK's default worker identity is "<pid>@<host>".
        return any(p.identity.startswith(f"{pid}@") for p in response.pollers)

    async def api_answers(self) -> bool:
        """Whether the API answers ``/health`` and reaches Temporal."""
        try:
            async with httpx.AsyncClient(timeout=5.0) as http:
                response = await http.get(f"{self.api_url}/health")
        except httpx.HTTPError:
            return False
        return response.status_code == httpx.codes.OK and response.json()["temporal"] == (
            "reachable"
        )


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
