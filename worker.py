"""The Countersign worker: runs ``AgentRunWorkflow`` and its activities.

Run it with ``python worker.py`` (``make worker``). SIGINT or SIGTERM stops
polling, lets in-flight activities finish (up to the graceful timeout) and
exits with status 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client
from temporalio.worker import Worker

from activities.llm import ModelActivities
from activities.notify import WebhookActivities, WebhookConfigError
from activities.tools import ToolActivities
from countersign import AgentRegistry, ToolDeps, decision_proof, event_loop, load_registry
from countersign.demo_db import DemoDatabase
from countersign.logs import configure_logging
from countersign.observability import (
    configure_tracing,
    install_run_context,
    install_worker_runtime,
    with_interceptors,
)
from countersign.settings import Settings, get_settings
from countersign.temporal import TemporalConfigError, connect
from workflows.agent_run import AgentRunWorkflow

logger = logging.getLogger("countersign.worker")

GRACEFUL_SHUTDOWN = timedelta(seconds=30)


class CountersignWorker(Worker):
    """A Temporal worker that closes its activities' HTTP clients once it stops.

    Without this, clients are closed by the garbage collector, which warns
    about a close that was never awaited.
    """

    def __init__(
        self, *args: Any, closers: Sequence[Callable[[], Awaitable[None]]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._closers = closers

    async def run(self) -> None:
        """Run until shut down (``async with`` runs this too), then close the clients."""
        try:
            await super().run()
        finally:
            for close in self._closers:
                await close()


def build_worker(
    client: Client,
    settings: Settings,
    *,
    registry: AgentRegistry | None = None,
    task_queue: str | None = None,
    graceful_shutdown_timeout: timedelta = GRACEFUL_SHUTDOWN,
) -> Worker:
    """A worker for the run workflow and its activities, not yet running.

    Args:
        client: Connected client (with the pydantic data converter).
        settings: Model, tool and demo-database settings.
        registry: Agents to serve; built from ``settings`` when ``None``.
        task_queue: Overrides ``settings.temporal_task_queue``.
        graceful_shutdown_timeout: How long shutdown waits for running activities.
    """
    registry = registry or load_registry(settings.agent_modules)
    demo_db = DemoDatabase(settings.demo_db_path)
    demo_db.ensure_seeded()
    model = ModelActivities(registry, settings)
    tools = ToolActivities(registry, ToolDeps(demo_db=demo_db))
    webhooks = WebhookActivities(settings)
    # The decide validator checks the API's proof with these keys; they reach
    # the workflow through this passed-through module, never through history.
    keys = [k.get_secret_value() for k in settings.decision_proof_keys]
    queue = task_queue or settings.temporal_task_queue
    decision_proof.configure(queue, decision_proof.from_settings(keys))
    if not keys:
        logger.warning(
            "COUNTERSIGN_DECISION_PROOF_KEYS is not set: decide updates are accepted from any "
            "Temporal client, whatever principal they name. Set it (the same on the API) in "
            "production."
        )
    return CountersignWorker(
        client,
        closers=[model.aclose, webhooks.aclose],
        task_queue=queue,
        workflows=[AgentRunWorkflow],
        activities=[model.model_turn, tools.execute_tool, webhooks.deliver_webhook],
        graceful_shutdown_timeout=graceful_shutdown_timeout,
        # Paused runs leave the cache and are replayed from history when a
        # decision arrives, so memory follows this number, not the paused runs.
        max_cached_workflows=settings.worker_max_cached_workflows,
    )


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run a worker until ``stop`` is set, then drain and return."""
    client = await connect(settings)
    tracing = configure_tracing(settings, "countersign-worker")
    if tracing is not None:
        client = with_interceptors(client, tracing.interceptors)
    worker = build_worker(client, settings)
    logger.info(
        "worker polling %s on %s (namespace %s); demo database %s",
        settings.temporal_task_queue,
        client.service_client.config.target_host,
        client.namespace,
        settings.demo_db_path,
    )
    try:
        async with worker:
            await stop.wait()
            logger.info("stopping: finishing in-flight activities")
    finally:
        if tracing is not None:
            tracing.shutdown()
    logger.info("worker stopped")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: configure logging, install signal handlers, serve."""
    del argv
    try:
        settings = get_settings()
    except ValidationError as err:
        # Logging is not configured yet (it needs the settings): say it on stderr.
        print(f"worker not started: invalid settings\n{err}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    install_run_context()
    # Before any client exists: clients and workers keep the runtime they were made with.
    install_worker_runtime(settings)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    try:
        event_loop.run(run())
    except (WebhookConfigError, TemporalConfigError) as err:
        # A configuration error, not a crash: one clear line, no traceback.
        logger.error("worker not started: %s", err)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
    # The SDK's Rust threads can outlive the event loop and abort the
    # interpreter's teardown with "PyGILState_Release" (temporalio/sdk-python#300;
    # about one stop in ten here). Everything is drained and flushed by now.
    logging.shutdown()
    os._exit(0)
