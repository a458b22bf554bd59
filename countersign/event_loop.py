"""The event loop the API and the worker run on: uvloop where it is installed.

Both processes spend much of their Python time in the event loop itself
(selecting, scheduling callbacks, waking up for the Temporal SDK's threads);
uvloop does that work in C. It is a dependency everywhere but Windows, where
the standard loop is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or ``None`` (the standard loop) where it is missing."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a new loop, as :func:`asyncio.run` does."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
