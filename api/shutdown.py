"""The Temporal waits requests hold open, so that shutdown can cancel them first.

A request waiting for a run to settle holds an update's result open. On
shutdown those waits are cancelled before uvicorn finishes, so it finishes at
once and the process exits without a client call pending; the runs go on in
Temporal and can be read again later.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import status
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

from api.errors import ApiError
from countersign.models import ErrorCode

T = TypeVar("T")


class PendingWaits:
    """The Temporal calls requests are waiting on, cancelled together on shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def in_flight(self) -> int:
        """How many waits are pending."""
        return len(self._tasks)

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` as a task that :meth:`cancel_all` can cancel.

        Raises:
            ApiError: 503 ``shutting_down`` when the API is shutting down.
        """
        if self._closing:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never started: close it so Python does not warn
            raise ApiError(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                ErrorCode.SHUTTING_DOWN,
                "the API is shutting down",
            )
        self._loop = asyncio.get_running_loop()
        task: asyncio.Task[T] = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            # The request itself went away (client disconnected): stop waiting for it.
            task.cancel()
            raise
        if task.cancelled() or (
            # The SDK turns a cancelled update call into its own error.
            self._closing and isinstance(task.exception(), WorkflowUpdateRPCTimeoutOrCancelledError)
        ):
            raise ApiError(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                ErrorCode.SHUTTING_DOWN,
                "the API is shutting down; the run goes on and can be read again later",
            )
        return task.result()

    def cancel_all(self) -> None:
        """Refuse new waits and cancel those in flight."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()

    def cancel_all_threadsafe(self) -> None:
        """:meth:`cancel_all` from a signal handler or another thread."""
        self._closing = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.cancel_all)
