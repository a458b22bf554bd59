"""Server-Sent Events named as in the AgentOS wire format, derived from settled views.

The workflow does not stream tokens: it settles (pauses, completes, fails or
is cancelled) and the API learns of it through one update. The events are
therefore derived from the views before and after, in the order things
happened, and arrive when the run settles; the last event says how the stream
ended and carries the whole run body. Framing, event ids and keep-alive pings
are ``sse-starlette``'s.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.errors import ApiError, run_client_error
from api.schemas import ErrorBody, RunPublic, ToolPublic
from countersign.models import CallState, ErrorCode, RunStatus, RunView

logger = logging.getLogger("countersign.api")

SSE_MEDIA_TYPE = "text/event-stream"


class RunEvent(StrEnum):
    """Event names (the AgentOS wire format's, plus ``RunInProgress``)."""

    RUN_STARTED = "RunStarted"
    RUN_CONTINUED = "RunContinued"
    TOOL_CALL_STARTED = "ToolCallStarted"
    TOOL_CALL_COMPLETED = "ToolCallCompleted"
    RUN_PAUSED = "RunPaused"
    RUN_COMPLETED = "RunCompleted"
    RUN_ERROR = "RunError"
    RUN_CANCELLED = "RunCancelled"
    #: Ours: the wait budget ran out before the run settled; the run goes on.
    RUN_IN_PROGRESS = "RunInProgress"


class StartedEvent(BaseModel):
    """Data of ``RunStarted`` and ``RunContinued``."""

    event: RunEvent
    run_id: str
    agent_id: str
    session_id: str
    tool_call_ids: list[str] = []


class ToolEvent(BaseModel):
    """Data of ``ToolCallStarted`` and ``ToolCallCompleted``."""

    event: RunEvent
    run_id: str
    tool: ToolPublic


class RunBodyEvent(RunPublic):
    """Data of the last event: the run body, named by the event."""

    event: RunEvent


class ErrorEvent(ErrorBody):
    """Data of a ``RunError`` that ends a stream without a run body (the API's error).

    ``content`` repeats ``detail`` where AgentOS clients read an error event's message.
    """

    event: RunEvent = RunEvent.RUN_ERROR
    content: str = ""

    @classmethod
    def of(cls, err: ApiError) -> ErrorEvent:
        """The event for an error the API would otherwise answer as HTTP."""
        return cls(detail=err.detail, code=err.code, content=err.detail)


#: The last event of a stream, by the run's status when it ends.
FINAL_EVENT = {
    RunStatus.PAUSED: RunEvent.RUN_PAUSED,
    RunStatus.COMPLETED: RunEvent.RUN_COMPLETED,
    RunStatus.ERROR: RunEvent.RUN_ERROR,
    RunStatus.CANCELLED: RunEvent.RUN_CANCELLED,
    RunStatus.RUNNING: RunEvent.RUN_IN_PROGRESS,
}
_RAN = (CallState.EXECUTED, CallState.FAILED)

Frame = tuple[RunEvent, BaseModel]


def settled_events(before: RunView | None, after: RunView) -> list[Frame]:
    """The events between two views: tool calls that ran since, then the outcome."""
    ran_before = {
        t.tool_call_id for t in (before.tools if before is not None else []) if t.state in _RAN
    }
    frames: list[Frame] = []
    for call in after.tools:
        if call.state in _RAN and call.tool_call_id not in ran_before:
            tool = ToolPublic.of(after.run_id, call)
            started = tool.model_copy(
                update={"result": None, "tool_call_error": None, "state": CallState.EXECUTING}
            )
            for name, shown in (
                (RunEvent.TOOL_CALL_STARTED, started),
                (RunEvent.TOOL_CALL_COMPLETED, tool),
            ):
                frames.append((name, ToolEvent(event=name, run_id=after.run_id, tool=shown)))
    final = FINAL_EVENT[after.status]
    frames.append((final, RunBodyEvent(**RunPublic.of(after).model_dump(), event=final)))
    return frames


async def run_frames(
    first: StartedEvent,
    before: RunView | None,
    settle: Callable[[], Awaitable[RunView]],
) -> AsyncIterator[Frame]:
    """The stream's events: the first at once, the rest once ``settle`` returns.

    Every stream ends with one event that says how: ``RunPaused``,
    ``RunCompleted``, ``RunError``, ``RunCancelled`` (each with the run body),
    ``RunInProgress`` when the wait budget ran out, or ``RunError`` with an
    error body when the API could not follow the run.

    Args:
        first: ``RunStarted`` or ``RunContinued``.
        before: The run before the request (``None`` for a new run).
        settle: Returns the run once it settled, or as it is when the wait
            budget ran out.
    """
    yield first.event, first
    try:
        after = await settle()
    except ApiError as err:
        yield RunEvent.RUN_ERROR, ErrorEvent.of(err)
        return
    except Exception as err:
        # Headers are sent: what the run client reports becomes the stream's last event.
        mapped = run_client_error(err)
        if mapped is None:
            logger.exception("stream of run %s failed", first.run_id, exc_info=err)
            mapped = ApiError(500, ErrorCode.INTERNAL_ERROR, "internal error (logged)")
        yield RunEvent.RUN_ERROR, ErrorEvent.of(mapped)
        return
    for frame in settled_events(before, after):
        yield frame


def event_stream(frames: AsyncIterator[Frame], *, ping: timedelta) -> EventSourceResponse:
    """The SSE response: numbered events, JSON data, a keep-alive comment every ``ping``.

    The pings keep proxies from cutting a stream that waits silently for a run
    to settle (up to the wait budget).
    """

    async def encoded() -> AsyncIterator[ServerSentEvent]:
        number = 0
        async for name, data in frames:
            number += 1
            yield ServerSentEvent(
                data=data.model_dump_json(), event=name.value, id=str(number), sep="\n"
            )

    return EventSourceResponse(encoded(), ping=ping.total_seconds(), sep="\n")
