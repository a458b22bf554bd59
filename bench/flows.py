"""One flow on each side, timed: create until paused, then approve until completed.

Countersign goes through its HTTP API as a client of the AgentOS wire format
would (``POST /agents/data_manager/runs``, then ``.../continue``); the bare
side goes straight to Temporal with update-with-start and an update. Both
answer only once the run is paused, and once it is completed.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from temporalio.api.history.v1 import History
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from bench.bare import BareWorkflow
from countersign.client import workflow_id

SEED_MESSAGE = "Delete 5 old records from the users table"
AGENT_ID = "data_manager"


class FlowError(RuntimeError):
    """A flow did not end as the benchmark expects (paused, then completed)."""


@dataclass
class FlowTimes:
    """Seconds from create to paused and from continue to completed, and the workflow id."""

    create: float
    approve: float
    workflow_id: str


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        raise FlowError(f"not JSON: {response.status_code} {response.text[:500]}") from None
    return body


class Side(Protocol):
    """One column of the benchmark."""

    name: str

    async def flow(self) -> FlowTimes:
        """Create a run, wait until paused, approve it, wait until completed."""
        ...


class CountersignSide:
    """Countersign through its HTTP API."""

    name = "countersign"

    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api

    async def create(self) -> dict[str, Any]:
        """Start a run and return its body once it is ``PAUSED``.

        Raises:
            FlowError: It answered anything else.
        """
        response = await self.api.post(
            f"/agents/{AGENT_ID}/runs",
            # A session per run: the figure is one run, not a growing session.
            data={"message": SEED_MESSAGE, "user_id": "bench", "session_id": uuid.uuid4().hex},
        )
        body = _body(response)
        if response.status_code != httpx.codes.OK or body.get("status") != "PAUSED":
            raise FlowError(f"run did not pause: {response.status_code} {body}")
        return body

    async def approve(self, run: dict[str, Any]) -> dict[str, Any]:
        """Confirm the run's pending call and return its body once ``COMPLETED``.

        Raises:
            FlowError: It answered anything else.
        """
        tool = run["tools"][0]
        decision = {
            "tool_call_id": tool["tool_call_id"],
            "tool_name": tool["tool_name"],
            "tool_args": tool["tool_args"],
            "confirmed": True,
        }
        response = await self.api.post(
            f"/agents/{AGENT_ID}/runs/{run['run_id']}/continue",
            data={"tools": json.dumps([decision]), "user_id": "bench"},
        )
        body = _body(response)
        if response.status_code != httpx.codes.OK or body.get("status") != "COMPLETED":
            raise FlowError(f"run did not complete: {response.status_code} {body}")
        return body

    async def flow(self) -> FlowTimes:
        """One timed flow."""
        start = time.perf_counter()
        run = await self.create()
        paused = time.perf_counter()
        await self.approve(run)
        done = time.perf_counter()
        return FlowTimes(paused - start, done - paused, workflow_id(run["run_id"]))


class BareSide:
    """The same-work bare workflow, straight through the Temporal client."""

    name = "bare"

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def flow(self) -> FlowTimes:
        """One timed flow.

        Raises:
            FlowError: The run did not pause or complete as expected.
        """
        wid = f"bare-{uuid.uuid4().hex}"
        start = time.perf_counter()
        operation = WithStartWorkflowOperation(
            BareWorkflow.run,
            SEED_MESSAGE,
            id=wid,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        state = await self.client.execute_update_with_start_workflow(
            BareWorkflow.wait_paused, start_workflow_operation=operation
        )
        paused = time.perf_counter()
        if state != "PAUSED":
            raise FlowError(f"bare run did not pause: {state!r}")
        handle = self.client.get_workflow_handle_for(BareWorkflow.run, wid)
        final = await handle.execute_update(BareWorkflow.approve, True)
        done = time.perf_counter()
        if final != SEED_MESSAGE:
            raise FlowError(f"bare run did not complete: {final!r}")
        return FlowTimes(paused - start, done - paused, wid)


async def in_lanes(n: int, lanes: int, job: Callable[[int], Awaitable[None]]) -> float:
    """Run ``job(i)`` for each i < n with at most ``lanes`` at once.

    Returns:
        The seconds it took.
    """
    jobs = iter(range(n))

    async def lane() -> None:
        for i in jobs:
            await job(i)

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(lanes, n))))
    return time.perf_counter() - start


async def history_size(client: Client, wid: str) -> tuple[int, int]:
    """Events in a closed run's history and the history's serialized bytes."""
    history = await client.get_workflow_handle(wid).fetch_history()
    return len(history.events), History(events=history.events).ByteSize()
