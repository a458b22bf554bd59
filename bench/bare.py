"""The same-work bare Temporal workflow that Countersign is measured against.

It does what a Countersign run with one gated call does, and nothing more:
a no-op "model" activity, a durable wait for the approval, then the gated
activity and a second no-op "model" activity. It is created with
update-with-start (the update answers once the run waits for its approval,
as ``POST /agents/{id}/runs`` answers ``PAUSED``) and approved with an update
that answers once the run completed (as ``.../continue`` answers
``COMPLETED``). So the difference between the two columns of the benchmark is
what Countersign adds: its HTTP API, its payloads, audit trail, search
attributes, TTL timer and the real model and tool calls.

``python -m bench.bare --address HOST:PORT --task-queue Q`` runs its worker in
a process of its own, as the Countersign worker runs in its own.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Sequence
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

# Passed through: the sandbox must not import the product package for every
# bare run, which would charge the bare column with work it does not do.
with workflow.unsafe.imports_passed_through():
    from countersign import event_loop

BARE_WORKFLOW = "BareRun"
_TIMEOUT = timedelta(seconds=30)


@activity.defn(name="bare_model")
async def bare_model(text: str) -> str:
    """Stands for a model turn: returns at once."""
    return text


@activity.defn(name="bare_tool")
async def bare_tool(text: str) -> str:
    """Stands for the gated tool: returns at once."""
    return text


@workflow.defn(name=BARE_WORKFLOW)
class BareWorkflow:
    """Model turn, wait for approval, gated tool, model turn, complete."""

    def __init__(self) -> None:
        self._paused = False
        self._approved: bool | None = None
        self._final: str | None = None

    @workflow.run
    async def run(self, message: str) -> str:
        """Run the flow; returns the second model turn's answer."""
        await workflow.execute_activity(bare_model, message, start_to_close_timeout=_TIMEOUT)
        self._paused = True
        await workflow.wait_condition(lambda: self._approved is not None)
        outcome = "rejected"
        if self._approved:
            outcome = await workflow.execute_activity(
                bare_tool, message, start_to_close_timeout=_TIMEOUT
            )
        self._final = await workflow.execute_activity(
            bare_model, outcome, start_to_close_timeout=_TIMEOUT
        )
        # The approve update answers from the same workflow task: let it finish first.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._final

    @workflow.update
    async def wait_paused(self) -> str:
        """Answers once the run waits for its approval (the create call)."""
        await workflow.wait_condition(lambda: self._paused)
        return "PAUSED"

    @workflow.update
    async def approve(self, confirmed: bool) -> str:
        """Decide the gated call; answers with the final text once the run is done."""
        self._approved = confirmed
        await workflow.wait_condition(lambda: self._final is not None)
        assert self._final is not None
        return self._final

    @approve.validator
    def _validate_approve(self, confirmed: bool) -> None:
        del confirmed
        if not self._paused or self._approved is not None:
            raise ValueError("not waiting for an approval")


async def _serve(address: str, namespace: str, task_queue: str) -> None:
    client = await Client.connect(address, namespace=namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[BareWorkflow],
        activities=[bare_model, bare_tool],
    ):
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the bare worker until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    event_loop.run(_serve(args.address, args.namespace, args.task_queue))


if __name__ == "__main__":
    main()
    # As worker.py: skip the teardown the SDK's Rust threads can abort
    # (temporalio/sdk-python#300); the worker has drained by now.
    logging.shutdown()
    os._exit(0)
