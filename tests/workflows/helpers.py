"""Helpers shared by the workflow tests: start a paused run, decide, check refusals.

They go through ``countersign.client`` (``build_run_input``, ``RunClient``)
exactly as the API does, so the tests exercise the product's calls.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from temporalio.client import Client, WorkflowHandle

from countersign.client import DecisionRefusedError, RunClient, build_run_input
from countersign.demo_db import DemoDatabase
from countersign.models import (
    AuditEvent,
    DecideRequest,
    DecideResult,
    DecisionInput,
    DecisionSource,
    ErrorCode,
    Principal,
    RunStatus,
    RunView,
)
from countersign.settings import Settings
from tests.agents_for_tests import AGENT_ID
from tests.scripted_openai import Reply, ScriptedModel
from worker import build_worker
from workflows.agent_run import AgentRunWorkflow

REPO_ROOT = Path(__file__).parents[2]
TEST_AGENT_MODULES = ["tests.agents_for_tests"]
WAIT = timedelta(seconds=30)

ALICE = Principal(id="alice", roles=("approver",))
BOB = Principal(id="bob", roles=("approver",))
CAROL = Principal(id="carol", roles=("approver",))
#: Whose decide_signal the runs started here accept (COUNTERSIGN_OPERATOR_IDS); not CAROL.
OPERATORS = [ALICE.id, BOB.id]

RunHandle = WorkflowHandle[AgentRunWorkflow, RunView]
T = TypeVar("T")


@dataclass
class Worker:
    """A worker a test runs in-process, with what the test needs to reach it."""

    settings: Settings
    db: DemoDatabase

    @property
    def task_queue(self) -> str:
        return self.settings.temporal_task_queue


@asynccontextmanager
async def running_worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    """Run the product's worker (``build_worker``) for the duration of the block."""
    temporal_worker = build_worker(client, settings)
    async with temporal_worker:
        yield Worker(settings, DemoDatabase(settings.demo_db_path))


async def start_settled(
    client: Client,
    worker: Worker,
    model: ScriptedModel,
    message: str,
    *replies: Reply,
    agent_id: str = AGENT_ID,
    requester: Principal = ALICE,
) -> tuple[RunHandle, RunView]:
    """Script the model, start a run and return it once it first settles."""
    if replies:
        model.script(message, *replies)
    run = build_run_input(
        worker.settings, agent_id=agent_id, message=message, requester=requester
    ).model_copy(update={"operator_ids": OPERATORS})
    started, view = await RunClient.start(client, run, task_queue=worker.task_queue, wait=WAIT)
    assert view is not None, f"run {run.run_id} did not settle within {WAIT}"
    return started.handle, view


async def start_paused(
    client: Client,
    worker: Worker,
    model: ScriptedModel,
    message: str,
    *replies: Reply,
    agent_id: str = AGENT_ID,
    requester: Principal = ALICE,
) -> tuple[RunHandle, RunView]:
    """Like :func:`start_settled`, and check that the run paused."""
    handle, view = await start_settled(
        client, worker, model, message, *replies, agent_id=agent_id, requester=requester
    )
    assert view.status is RunStatus.PAUSED, f"expected PAUSED, got {view.status}: {view.error}"
    return handle, view


def request(
    decisions: dict[str, bool] | list[DecisionInput],
    principal: Principal = ALICE,
    source: DecisionSource = DecisionSource.API,
) -> DecideRequest:
    """A decide request; ``{call_id: confirmed}`` is the short form."""
    items = (
        [DecisionInput(tool_call_id=k, confirmed=v) for k, v in decisions.items()]
        if isinstance(decisions, dict)
        else decisions
    )
    return DecideRequest(decisions=items, principal=principal, source=source)


async def decide_and_wait(
    handle: RunHandle,
    decisions: dict[str, bool] | list[DecisionInput],
    principal: Principal = ALICE,
) -> RunView:
    """Send decisions through the ``decide`` update; return the run it reports."""
    result: DecideResult | None = await RunClient(handle).decide(
        request(decisions, principal), wait=WAIT
    )
    assert result is not None, f"decide did not answer within {WAIT}"
    return result.run


async def approve(handle: RunHandle, *call_ids: str, principal: Principal = ALICE) -> RunView:
    """Approve calls in one request."""
    return await decide_and_wait(handle, dict.fromkeys(call_ids, True), principal)


async def reject(
    handle: RunHandle, call_id: str, note: str | None = None, principal: Principal = ALICE
) -> RunView:
    """Reject one call, with an optional note."""
    decision = DecisionInput(tool_call_id=call_id, confirmed=False, note=note)
    return await decide_and_wait(handle, [decision], principal)


async def assert_refused(code: ErrorCode, attempt: Awaitable[object]) -> DecisionRefusedError:
    """Await ``attempt`` and check the workflow refused it with ``code``."""
    with pytest.raises(DecisionRefusedError) as refused:
        await attempt
    assert refused.value.code is code, f"refused with {refused.value.code}, expected {code}"
    return refused.value


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    what: str,
    within: timedelta = WAIT,
    interval: float = 0.05,
) -> T:
    """Poll ``check`` until it returns something other than ``None`` or ``False``.

    Raises:
        AssertionError: ``within`` passed first; the message names ``what``.
    """
    deadline = time.monotonic() + within.total_seconds()
    while True:
        value = await check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} waiting for {what}")
        await asyncio.sleep(interval)


def tool_outputs_sent(model: ScriptedModel, message: str) -> list[str]:
    """The tool results the model received in the last request of a conversation."""
    bodies = model.requests_for(message)
    assert bodies, f"the model never saw {message!r}"
    last = bodies[-1]
    if "messages" in last:
        return [str(m.get("content")) for m in last["messages"] if m.get("role") == "tool"]
    return [
        str(item.get("output"))
        for item in last.get("input") or []
        if item.get("type") == "function_call_output"
    ]


async def current(handle: RunHandle) -> RunView:
    """The run as the ``state`` query shows it now."""
    view: RunView = await handle.query(AgentRunWorkflow.state)
    return view


async def audit_trail(handle: RunHandle) -> list[AuditEvent]:
    """The run's audit trail, from the ``audit`` query."""
    trail: list[AuditEvent] = await handle.query(AgentRunWorkflow.audit)
    return trail


def call_ids(view: RunView, tool_name: str | None = None) -> list[str]:
    """Ids of the run's calls, in order, optionally of one tool only."""
    return [t.tool_call_id for t in view.tools if tool_name in (None, t.tool_name)]


class WorkerProcess:
    """``python worker.py`` as a subprocess, so a test can SIGKILL it for real."""

    def __init__(self, env_vars: dict[str, str], log_path: Path) -> None:
        self._env = {**os.environ, **env_vars}
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the worker; it polls as soon as it has connected."""
        log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "worker.py"],
            cwd=REPO_ROOT,
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, no chance to finish anything."""
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and wait (the worker drains and exits); kill if it lingers."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        """What the worker wrote so far, for assertion messages."""
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""
