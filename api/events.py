"""Server-Sent Events named as in the AgentOS wire format, derived from settled views.

The workflow does not stream tokens: it settles (pauses, completes or fails)
and the API learns of it through one update. The events are therefore derived
from the views before and after, in the order things happened, and arrive when
the run settles; the last event carries the whole run body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from enum import StrEnum

from pydantic import BaseModel

from api.errors import ApiError, run_client_error
from api.schemas import ErrorBody, RunPublic, ToolPublic
from countersign.models import CallState, RunStatus, RunView

SSE_MEDIA_TYPE = "text/event-stream"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class RunEvent(StrEnum):
    """Event names (the AgentOS wire format's, plus ``RunInProgress``)."""

    RUN_STARTED = "RunStarted"
    RUN_CONTINUED = "RunContinued"
    TOOL_CALL_STARTED = "ToolCallStarted"
    TOOL_CALL_COMPLETED = "ToolCallCompleted"
    RUN_PAUSED = "RunPaused"
    RUN_COMPLETED = "RunCompleted"
    RUN_ERROR = "RunError"
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


def format_event(name: RunEvent, data: BaseModel) -> bytes:
    """One SSE frame."""
    return f"event: {name.value}\ndata: {data.model_dump_json()}\n\n".encode()


_RAN = (CallState.EXECUTED, CallState.FAILED)
_FINAL_EVENT = {
    RunStatus.PAUSED: RunEvent.RUN_PAUSED,
    RunStatus.COMPLETED: RunEvent.RUN_COMPLETED,
    RunStatus.ERROR: RunEvent.RUN_ERROR,
    RunStatus.CANCELLED: RunEvent.RUN_ERROR,
    RunStatus.RUNNING: RunEvent.RUN_IN_PROGRESS,
}


def settled_events(before: RunView | None, after: RunView) -> list[bytes]:
    """The events between two views: tool calls that ran since, then the outcome."""
    ran_before = {
        t.tool_call_id for t in (before.tools if before is not None else []) if t.state in _RAN
    }
    frames: list[bytes] = []
    for call in after.tools:
        if call.state in _RAN and call.tool_call_id not in ran_before:
            tool = ToolPublic.of(after.run_id, call)
            started = tool.model_copy(
                update={"result": None, "tool_call_error": None, "state": CallState.EXECUTING}
            )
            frames.append(
                format_event(
                    RunEvent.TOOL_CALL_STARTED,
                    ToolEvent(event=RunEvent.TOOL_CALL_STARTED, run_id=after.run_id, tool=started),
                )
            )
            frames.append(
                format_event(
                    RunEvent.TOOL_CALL_COMPLETED,
                    ToolEvent(event=RunEvent.TOOL_CALL_COMPLETED, run_id=after.run_id, tool=tool),
                )
            )
    final = _FINAL_EVENT[after.status]
    body = RunBodyEvent(**RunPublic.of(after).model_dump(), event=final)
    frames.append(format_event(final, body))
    return frames


async def stream_run(
    first: StartedEvent,
    before: RunView | None,
    settle: Callable[[], Awaitable[RunView]],
) -> AsyncIterator[bytes]:
    """The whole stream: the first event, then the rest once ``settle`` returns.

    Args:
        first: ``RunStarted`` or ``RunContinued``.
        before: The run before the request (``None`` for a new run).
        settle: Returns the run once it settled, or as it is when the wait
            budget ran out.
    """
    yield format_event(first.event, first)
    try:
        after = await settle()
    except ApiError as err:
        yield format_event(RunEvent.RUN_ERROR, ErrorBody(detail=err.detail, code=err.code))
        return
    except Exception as err:
        # Headers are sent: what the run client reports becomes the stream's last event.
        mapped = run_client_error(err)
        if mapped is None:
            raise
        yield format_event(RunEvent.RUN_ERROR, ErrorBody(detail=mapped.detail, code=mapped.code))
        return
    for frame in settled_events(before, after):
        yield frame
