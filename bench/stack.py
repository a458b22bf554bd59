"""Start the benchmark's stack: one dev server, the model, both workers, the API.

The dev server gets the product's search attributes and dynamic config
(``devstack.temporal_server``), on free ports, with its SQLite file in a
temporary directory. The Countersign worker is ``python worker.py`` and the API
``python -m api``, configured through the environment as in production; the
API runs in development mode (no authentication) with rate limits off, so the
figures are the run path and not the key check or the limiter.
"""

from __future__ import annotations

import compileall
import contextlib
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.procs import ROOT, Processes, free_port, poll_until
from devstack.temporal_server import dev_server_args, temporal_cli

logger = logging.getLogger("bench")

NAMESPACE = "default"
STARTUP_TIMEOUT = 90.0


def compile_sources() -> None:
    """Write bytecode for the project's packages and modules, as ``make`` does first.

    The workflow sandbox imports the workflow's modules afresh for every run;
    without bytecode on disk (``PYTHONDONTWRITEBYTECODE`` set) it compiles
    them every time, which a deployment does not pay and the figures must not
    include.
    """
    for entry in sorted(ROOT.iterdir()):
        if entry.suffix == ".py":
            compileall.compile_file(entry, quiet=1)
        elif (entry / "__init__.py").exists():
            compileall.compile_dir(entry, quiet=1)


def server_args() -> list[str]:
    """The benchmark's server flags: those of every dev server the project starts.

    The dynamic config comes from ``deploy/temporal-dynamicconfig.yaml``
    (eager activities, the transfer poll rate), as for ``make up`` and the tests.
    """
    return dev_server_args()


_PROJECT_PREFIXES = ("COUNTERSIGN_", "TEMPORAL_", "OPENAI_", "OTEL_")


@dataclass
class Stack:
    """The running stack: where to reach each part and its process id."""

    processes: Processes
    client: Client
    address: str
    api_url: str
    task_queue: str
    bare_queue: str

    def pid(self, name: str) -> int:
        """Process id of ``temporal``, ``model``, ``worker``, ``api`` or ``bare``."""
        return self.processes.pid(name)


def _env(address: str, **values: str) -> dict[str, str]:
    # Nothing from the caller's own configuration (webhooks, a real model,
    # authentication...) may change the work measured.
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PROJECT_PREFIXES)}
    # The connection variables under the names the settings read today and
    # under temporalio.envconfig's, so a rename on either side keeps working.
    env |= {
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_NAMESPACE": NAMESPACE,
        "COUNTERSIGN_TEMPORAL_ADDRESS": address,
        "COUNTERSIGN_TEMPORAL_NAMESPACE": NAMESPACE,
        "COUNTERSIGN_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    return env | values


async def _pollers(client: Client, task_queue: str, pid: int) -> bool:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=NAMESPACE,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    # The SDK's default worker identity is "<pid>@<host>".
    return any(p.identity.startswith(f"{pid}@") for p in response.pollers)


async def _answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            return (await http.get(url)).status_code == httpx.codes.OK
    except httpx.HTTPError:
        return False


@contextlib.asynccontextmanager
async def running_stack(work_dir: Path, *, worker_cache: int) -> AsyncIterator[Stack]:
    """Start every part, wait until each answers, and stop them all on the way out.

    Args:
        work_dir: Temporary directory for the server's database, the demo
            database and the processes' logs.
        worker_cache: The Countersign worker's workflow cache size.
    """
    compile_sources()
    processes = Processes(work_dir)
    try:
        stack = await _start(processes, work_dir, worker_cache)
        yield stack
    finally:
        problems = processes.stop_all()
        if problems:
            logger.warning("did not stop cleanly: %s (logs in %s)", ", ".join(problems), work_dir)


async def _start(processes: Processes, work_dir: Path, worker_cache: int) -> Stack:
    port = free_port()
    address = f"127.0.0.1:{port}"
    processes.start(
        "temporal",
        [
            str(temporal_cli()),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--headless",
            "--db-filename",
            str(work_dir / "temporal.sqlite3"),
            "--log-level",
            "error",
            *server_args(),
        ],
        _env(address),
    )
    client: Client | None = None

    async def server_answers() -> bool:
        nonlocal client
        processes.check_alive()
        try:
            client = await Client.connect(address, namespace=NAMESPACE)
        except RuntimeError:
            return False
        return True

    await poll_until(server_answers, within=STARTUP_TIMEOUT, what=f"Temporal at {address}")
    assert client is not None
    connected = client

    model_port = free_port()
    processes.start(
        "model",
        [sys.executable, "-m", "bench.model_server", "--port", str(model_port)],
        _env(address),
    )
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    worker_pid = processes.start(
        "worker",
        [sys.executable, "worker.py"],
        _env(
            address,
            COUNTERSIGN_TASK_QUEUE=task_queue,
            COUNTERSIGN_MODEL="openai",
            OPENAI_API_KEY="bench",
            OPENAI_BASE_URL=f"http://127.0.0.1:{model_port}/v1",
            OPENAI_MODEL="bench-scripted",
            COUNTERSIGN_DEMO_DB=str(work_dir / "demo.sqlite3"),
            COUNTERSIGN_WORKER_MAX_CACHED_WORKFLOWS=str(worker_cache),
        ),
    )
    api_port = free_port()
    processes.start(
        "api",
        [sys.executable, "-m", "api"],
        _env(
            address,
            COUNTERSIGN_TASK_QUEUE=task_queue,
            COUNTERSIGN_API_HOST="127.0.0.1",
            COUNTERSIGN_API_PORT=str(api_port),
            COUNTERSIGN_AUTH_DISABLED="true",
            # The load is one principal on purpose: no limit, neither the
            # default nor its roles' budgets (the dev principal holds
            # approver, whose 600 a minute stopped a 10,000-run scale phase).
            COUNTERSIGN_RATE_LIMIT_PER_MINUTE="0",
            COUNTERSIGN_RATE_LIMIT_ROLES="",
        ),
    )
    bare_queue = f"bare-{uuid.uuid4().hex[:8]}"
    bare_pid = processes.start(
        "bare",
        [
            sys.executable,
            "-m",
            "bench.bare",
            "--address",
            address,
            "--namespace",
            NAMESPACE,
            "--task-queue",
            bare_queue,
        ],
        _env(address),
    )
    api_url = f"http://127.0.0.1:{api_port}"

    def alive(probe: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
        async def checked() -> bool:
            # A part that died fails the start at once, naming its log.
            processes.check_alive()
            return await probe()

        return checked

    await poll_until(
        alive(lambda: _answers(f"http://127.0.0.1:{model_port}/health")),
        within=STARTUP_TIMEOUT,
        what="the scripted model",
    )
    await poll_until(
        alive(lambda: _pollers(connected, task_queue, worker_pid)),
        within=STARTUP_TIMEOUT,
        what="the Countersign worker to poll",
    )
    await poll_until(
        alive(lambda: _pollers(connected, bare_queue, bare_pid)),
        within=STARTUP_TIMEOUT,
        what="the bare worker to poll",
    )
    await poll_until(
        alive(lambda: _answers(f"{api_url}/health")), within=STARTUP_TIMEOUT, what="the API"
    )
    return Stack(processes, connected, address, api_url, task_queue, bare_queue)
