"""Reading runs for the routes: a run of an agent, a run just started, a gated call.

Each read goes through the run client; what it reports (no such run, no
worker) becomes an HTTP error in :mod:`api.errors`. A run the caller may not
read is reported exactly as a missing one, so nobody learns which ids exist.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import status
from temporalio.client import Client

from api import policy
from api.errors import ApiError
from api.schemas import split_approval_id
from countersign.client import RunClient, RunNotFoundError, WorkerUnavailableError
from countersign.models import ErrorCode, Principal, RunInput, RunState, RunView, ToolCallView


async def agent_run(client: Client, agent_id: str, run_id: str) -> RunView:
    """A run of this agent; another agent's run is reported as unknown.

    Raises:
        ApiError: 404 ``unknown_run``.
        WorkerUnavailableError: The run is open and no worker answered.
    """
    view = await RunClient.of(client, run_id).view()
    if view.agent_id != agent_id:
        raise ApiError.unknown_run(run_id)
    return view


def started_view(run: RunInput) -> RunView:
    """A run that is started in Temporal but that no worker has taken yet."""
    now = datetime.now(UTC)
    return RunView.of(run, RunState(created_at=now, updated_at=now))


async def view_or_started(client: Client, run: RunInput) -> RunView:
    """The run as it is, or as it was started when no worker has taken it yet."""
    try:
        return await RunClient.of(client, run.run_id).view()
    except WorkerUnavailableError:
        return started_view(run)


def unknown_approval(approval: str) -> ApiError:
    """404 ``unknown_approval``: the same for a missing call and a hidden one."""
    return ApiError(
        status.HTTP_404_NOT_FOUND,
        ErrorCode.UNKNOWN_APPROVAL,
        f"approval {approval!r} does not exist",
    )


async def locate(client: Client, approval: str, principal: Principal) -> tuple[RunView, str]:
    """The run behind an approval id, if ``principal`` may read it, and the call's id.

    Raises:
        ApiError: 404 ``unknown_approval``.
    """
    parts = split_approval_id(approval)
    if parts is None:
        raise unknown_approval(approval)
    run_id, call_id = parts
    try:
        view = await RunClient.of(client, run_id).view()
    except RunNotFoundError:
        raise unknown_approval(approval) from None
    if not policy.can_read(principal, view):
        raise unknown_approval(approval)
    return view, call_id


def gated_call(view: RunView, call_id: str) -> ToolCallView | None:
    """The run's call ``call_id`` when it needs (or needed) a confirmation."""
    return next(
        (t for t in view.tools if t.tool_call_id == call_id and t.requires_confirmation), None
    )
