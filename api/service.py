"""What the routes ask of Temporal: run views, listings, decisions, session context.

Routes stay thin; this module knows the workflow's queries and updates, the
visibility queries on the search attributes, and how Temporal's errors map to
API errors. It holds no state of its own besides the set of waits in flight.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from fastapi import status
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import QueryRejectCondition
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import (
    INVALID_REQUEST,
    SHUTTING_DOWN,
    UNKNOWN_RUN,
    WORKER_UNAVAILABLE,
    ApiError,
    is_connection_failure,
)
from api.schemas import RunSummary
from countersign import search_attributes as sa
from countersign.models import (
    AuditEvent,
    ChatMessage,
    DecisionSource,
    ErrorCode,
    Principal,
    RefusedAttempt,
    RunInput,
    RunStatus,
    RunView,
)
from countersign.runs import WORKFLOW_ID_PREFIX, run_handle
from workflows.agent_run import AgentRunWorkflow

logger = logging.getLogger("countersign.api")

T = TypeVar("T")
RunHandle = WorkflowHandle[AgentRunWorkflow, RunView]


class PendingWaits:
    """The Temporal calls requests are waiting on, so shutdown can cancel them.

    A request waiting for a run to settle holds an update's result open; on
    shutdown they are cancelled first so uvicorn can finish at once and the
    process exits without a pending client call (DESIGN §7).
    """

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
                status.HTTP_503_SERVICE_UNAVAILABLE, SHUTTING_DOWN, "the API is shutting down"
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
                SHUTTING_DOWN,
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


# -------------------------------------------------------------------- reads


def _unknown_run(run_id: str) -> ApiError:
    return ApiError(status.HTTP_404_NOT_FOUND, UNKNOWN_RUN, f"run {run_id} does not exist")


def _is_not_found(err: RPCError) -> bool:
    return err.status is RPCStatusCode.NOT_FOUND


#: How long reading an open run waits for a worker to answer its query.
QUERY_TIMEOUT = timedelta(seconds=5)


def _no_worker(err: RPCError) -> bool:
    # A query times out when no worker answers (the client reports its own
    # deadline as CANCELLED "Timeout expired"); the server answers "no poller"
    # at once when a queue's workers stopped polling a while ago.
    return (
        err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED)
        or "no poller" in err.message
    )


async def view_or_started(client: Client, run: RunInput) -> RunView:
    """The run as it is, or as it was started when no worker has taken it yet."""
    try:
        return await get_view(client, run.run_id)
    except ApiError as err:
        if err.code != WORKER_UNAVAILABLE:
            raise
    return started_view(run)


def started_view(run: RunInput) -> RunView:
    """A run that is started in Temporal but that no worker has taken yet."""
    now = datetime.now(UTC)
    return RunView(
        run_id=run.run_id,
        agent_id=run.agent_id,
        session_id=run.session_id,
        user_id=run.user_id,
        status=RunStatus.RUNNING,
        message=run.message,
        created_at=now,
        updated_at=now,
        requester=run.requester,
    )


async def get_view(client: Client, run_id: str) -> RunView:
    """The run's view: a query while it is open, its result once closed.

    A closed run's result comes from its history, so reading a finished run
    needs no worker to replay it.

    Raises:
        ApiError: 404 ``unknown_run``.
    """
    handle = run_handle(client, run_id)
    try:
        return await handle.query(
            AgentRunWorkflow.state,
            reject_condition=QueryRejectCondition.NOT_OPEN,
            rpc_timeout=QUERY_TIMEOUT,
        )
    except WorkflowQueryRejectedError:
        pass
    except RPCError as err:
        if _is_not_found(err):
            raise _unknown_run(run_id) from None
        if _no_worker(err):
            raise ApiError.worker_unavailable(
                f"no worker answered for run {run_id} within {QUERY_TIMEOUT.total_seconds():g} s;"
                " it is safe in Temporal and answers once a worker polls its task queue"
            ) from None
        raise
    try:
        return await handle.result()
    except WorkflowFailureError:
        # Terminated or timed out by an operator: the last state still answers a query.
        return await handle.query(AgentRunWorkflow.state)


async def get_agent_run(client: Client, agent_id: str, run_id: str) -> RunView:
    """A run of this agent; another agent's run is reported as unknown.

    Raises:
        ApiError: 404 ``unknown_run``.
    """
    view = await get_view(client, run_id)
    if view.agent_id != agent_id:
        raise _unknown_run(run_id)
    return view


async def get_audit(client: Client, run_id: str) -> list[AuditEvent]:
    """The run's audit trail, oldest first.

    Raises:
        ApiError: 404 ``unknown_run``.
    """
    try:
        return await run_handle(client, run_id).query(AgentRunWorkflow.audit)
    except RPCError as err:
        if _is_not_found(err):
            raise _unknown_run(run_id) from None
        raise


# ------------------------------------------------------------- visibility


def _literal(field: str, value: str) -> str:
    # Visibility queries have no escape for quotes; such values cannot be filtered on.
    if any(c in value for c in "'\"\\") or len(value) > 256:
        raise ApiError(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            INVALID_REQUEST,
            f"{field}: must not contain quotes or backslashes (max 256 characters)",
        )
    return f"'{value}'"


def visibility_query(filters: dict[str, tuple[str, str | None]], *extra: str) -> str:
    """A visibility query from ``{param: (search attribute, value)}`` and extra clauses."""
    clauses = [f"WorkflowType = '{AgentRunWorkflow.__name__}'", *extra]
    for param, (attribute, value) in filters.items():
        if value is not None:
            clauses.append(f"{attribute} = {_literal(param, value)}")
    return " AND ".join(clauses)


def _encode_token(token: bytes | None) -> str | None:
    return base64.urlsafe_b64encode(token).decode() if token else None


def _decode_token(token: str | None) -> bytes | None:
    if not token:
        return None
    try:
        decoded = base64.b64decode(token.encode(), altchars=b"-_", validate=True)
        if not decoded:
            raise ValueError("empty token")
        return decoded
    except (binascii.Error, ValueError):
        raise ApiError(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            INVALID_REQUEST,
            "page_token: not a token this API returned",
        ) from None


async def list_page(
    client: Client, query: str, *, limit: int, page_token: str | None
) -> tuple[list[WorkflowExecution], str | None]:
    """One page of workflows matching ``query`` and the token of the next page.

    Raises:
        ApiError: 422 for a page token this API did not issue.
    """
    iterator = client.list_workflows(
        query, page_size=limit, next_page_token=_decode_token(page_token)
    )
    try:
        await iterator.fetch_next_page()
    except RPCError as err:
        if err.status is RPCStatusCode.INVALID_ARGUMENT:
            raise ApiError(
                status.HTTP_422_UNPROCESSABLE_CONTENT, INVALID_REQUEST, f"bad listing: {err}"
            ) from None
        raise
    return list(iterator.current_page or []), _encode_token(iterator.next_page_token)


def run_id_of(execution: WorkflowExecution) -> str:
    """The run id behind a workflow id."""
    return execution.id.removeprefix(WORKFLOW_ID_PREFIX)


def summary_of(execution: WorkflowExecution) -> RunSummary:
    """A listing row from visibility alone."""
    attrs = execution.typed_search_attributes
    status_value = attrs.get(sa.STATUS)
    return RunSummary(
        run_id=run_id_of(execution),
        agent_id=attrs.get(sa.AGENT_ID) or "",
        session_id=attrs.get(sa.SESSION_ID),
        user_id=attrs.get(sa.USER_ID),
        status=RunStatus(status_value)
        if status_value is not None and status_value in RunStatus.__members__
        else None,
        pending_approvals=attrs.get(sa.PENDING_APPROVALS) or 0,
        pending_tools=list(attrs.get(sa.PENDING_TOOLS) or []),
        started_at=execution.start_time,
        closed_at=execution.close_time,
    )


async def session_context(
    client: Client, *, agent_id: str, session_id: str, limit: int
) -> list[ChatMessage]:
    """The conversation of the session's earlier completed runs, oldest first.

    Each completed run contributes its user message and its final answer; the
    last ``limit`` messages are kept. Visibility is eventually consistent, so a
    run that completed a moment ago may not be listed yet.
    """
    if limit <= 0:
        return []
    query = visibility_query(
        {
            "agent_id": (sa.AGENT_ID.name, agent_id),
            "session_id": (sa.SESSION_ID.name, session_id),
        },
        f"{sa.STATUS.name} = '{RunStatus.COMPLETED.value}'",
        "ExecutionStatus = 'Completed'",
    )
    # Closed runs are listed by close time, newest first: the newest are enough.
    wanted = (limit + 1) // 2
    executions = [e async for e in client.list_workflows(query, limit=wanted, page_size=wanted)]
    executions.sort(key=lambda e: e.start_time)
    views = await asyncio.gather(*(run_handle(client, run_id_of(e)).result() for e in executions))
    messages: list[ChatMessage] = []
    for view in views:
        messages.append(ChatMessage(role="user", content=view.message))
        messages.append(ChatMessage(role="assistant", content=view.content or ""))
    return messages[-limit:]


def pending_approvals_query(
    agent_id: str | None, tool_name: str | None, user_id: str | None = None
) -> str:
    """Visibility query of the runs that wait for at least one decision."""
    extra = [f"{sa.PENDING_APPROVALS.name} > 0", "ExecutionStatus = 'Running'"]
    if tool_name is not None:
        extra.append(f"{sa.PENDING_TOOLS.name} = {_literal('tool_name', tool_name)}")
    return visibility_query(
        {"agent_id": (sa.AGENT_ID.name, agent_id), "user_id": (sa.USER_ID.name, user_id)},
        *extra,
    )


INBOX_QUERY_TIMEOUT = timedelta(seconds=5)


async def open_views(client: Client, executions: list[WorkflowExecution]) -> list[RunView]:
    """The views of listed runs, queried together.

    Runs that vanished or closed since they were listed are skipped, and so are
    runs that cannot answer: a worker that does not answer in time, or none
    polling the run's task queue at all (``no poller seen``). One stuck run
    must not take the whole inbox down; only Temporal itself being unreachable
    fails the listing.
    """

    async def one(execution: WorkflowExecution) -> RunView | None:
        if execution.status not in (None, WorkflowExecutionStatus.RUNNING):
            return None
        try:
            return await run_handle(client, run_id_of(execution)).query(
                AgentRunWorkflow.state,
                reject_condition=QueryRejectCondition.NOT_OPEN,
                rpc_timeout=INBOX_QUERY_TIMEOUT,
            )
        except (WorkflowQueryRejectedError, WorkflowQueryFailedError) as err:
            # Closed meanwhile, or its worker could not answer (a replay failure).
            logger.info("inbox skips %s: %s", execution.id, err)
            return None
        except RPCError as err:
            if err.status is RPCStatusCode.UNAVAILABLE:
                raise
            logger.warning(
                "inbox skips %s, its state query failed: %s",
                execution.id,
                err,
                extra={"workflow_id": execution.id},
            )
            return None

    found = await asyncio.gather(*(one(e) for e in executions))
    return [v for v in found if v is not None]


# --------------------------------------------------------------- decisions


def refusal_of(err: WorkflowUpdateFailedError) -> tuple[ErrorCode, str] | None:
    """The workflow's refusal behind a failed ``decide`` update, if it was one."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type in set(ErrorCode):
        return ErrorCode(str(cause.type)), cause.message
    return None


async def record_refusal(
    handle: RunHandle,
    principal: Principal,
    tool_call_ids: list[str],
    code: str,
    reason: str,
    source: DecisionSource = DecisionSource.API,
) -> None:
    """Tell the workflow about a refused decision, for its audit trail (best effort).

    The signal changes no call's state; when it cannot be sent the refusal is
    still answered, and logged here.
    """
    try:
        await handle.signal(
            AgentRunWorkflow.record_refused_attempt,
            RefusedAttempt(
                principal=principal,
                source=source,
                tool_call_ids=tool_call_ids,
                code=code,
                reason=reason,
            ),
        )
    except (RPCError, RuntimeError) as err:
        logger.warning(
            "could not record a refused decision on %s: %s",
            handle.id,
            err,
            extra={"workflow_id": handle.id},
        )


async def wait_settled(handle: RunHandle, after_seq: int, wait: timedelta) -> RunView | None:
    """The run once it settles after ``after_seq``, or ``None`` when ``wait`` passes first."""
    try:
        return await asyncio.wait_for(
            handle.execute_update(AgentRunWorkflow.wait_settled, after_seq), wait.total_seconds()
        )
    except TimeoutError:
        return None


def finished_run_error(run_id: str, err: RPCError) -> ApiError:
    """An update sent to a run that closed meanwhile: it is no longer paused."""
    if is_connection_failure(err):
        return ApiError.temporal_unavailable(err)
    return ApiError.refusal(ErrorCode.NOT_PAUSED, f"run {run_id} is no longer paused ({err})")
