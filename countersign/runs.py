"""Starting runs and sending decisions: the client side of ``AgentRunWorkflow``.

The API and the CLI use these; so do the tests, so that they exercise the same
calls the product makes.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy

from countersign import search_attributes as sa
from countersign.models import (
    ChatMessage,
    DecideRequest,
    DecideResult,
    Principal,
    RunInput,
    RunOptions,
    RunStatus,
    RunView,
)
from countersign.settings import Settings
from workflows.agent_run import AgentRunWorkflow

WORKFLOW_ID_PREFIX = "countersign-run-"
# How long a call waits for a worker to take an update when it has no wait budget.
ACCEPT_TIMEOUT = timedelta(seconds=30)


class NotAcceptedError(Exception):
    """No worker took an update in time.

    The server keeps an update it admitted and hands it to the run's next
    worker, where the validator still decides; only a restart of the Temporal
    server before then drops it.
    """


def workflow_id(run_id: str) -> str:
    """The workflow id of a run (one run, one workflow execution)."""
    return f"{WORKFLOW_ID_PREFIX}{run_id}"


def new_run_id() -> str:
    """A fresh run id."""
    return uuid.uuid4().hex


def run_options(settings: Settings) -> RunOptions:
    """The per-run options that the settings give."""
    return RunOptions(
        max_turns=settings.max_turns,
        default_confirmation_ttl=settings.confirmation_ttl,
        tool_output_limit=settings.tool_output_limit,
        llm_timeout=settings.llm_timeout,
        llm_max_attempts=settings.llm_max_attempts,
        llm_retry_initial_interval=settings.llm_retry_initial_interval,
        tool_timeout=settings.tool_timeout,
        tool_heartbeat_timeout=settings.tool_heartbeat_timeout,
        webhooks=bool(settings.webhook_urls),
        webhook_retry_for=settings.webhook_retry_for,
    )


def _search_attributes(run: RunInput) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(sa.AGENT_ID, run.agent_id),
        SearchAttributePair(sa.SESSION_ID, run.session_id),
        SearchAttributePair(sa.STATUS, RunStatus.RUNNING.value),
        SearchAttributePair(sa.PENDING_APPROVALS, 0),
    ]
    if run.user_id:
        pairs.append(SearchAttributePair(sa.USER_ID, run.user_id))
    return TypedSearchAttributes(pairs)


def build_run_input(
    settings: Settings,
    *,
    agent_id: str,
    message: str,
    requester: Principal,
    session_id: str | None = None,
    user_id: str | None = None,
    context: list[ChatMessage] | None = None,
    run_id: str | None = None,
) -> RunInput:
    """The workflow input for a new run."""
    return RunInput(
        run_id=run_id or new_run_id(),
        agent_id=agent_id,
        message=message,
        user_id=user_id,
        session_id=session_id or uuid.uuid4().hex,
        requester=requester,
        context=context or [],
        options=run_options(settings),
    )


async def start_run(
    client: Client,
    run: RunInput,
    *,
    task_queue: str,
    wait: timedelta | None,
) -> tuple[WorkflowHandle[AgentRunWorkflow, RunView], RunView | None]:
    """Start a run and wait, without polling, until it settles or ``wait`` passes.

    It uses update-with-start: one request starts the workflow and attaches
    the ``wait_settled`` update, whose result arrives when the run pauses,
    completes or fails.

    Returns:
        The workflow handle and the settled run, or ``None`` when the wait
        budget ran out first (the run goes on).

    Raises:
        NotAcceptedError: The workflow is started but no worker took it within
            ``wait`` (or ``ACCEPT_TIMEOUT``); it runs when a worker polls.
    """
    operation = WithStartWorkflowOperation(
        AgentRunWorkflow.run,
        run,
        id=workflow_id(run.run_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        search_attributes=_search_attributes(run),
        static_summary=f"{run.agent_id}: {run.message[:200]}",
    )
    deadline = _deadline(wait)
    try:
        update = await client.start_update_with_start_workflow(
            AgentRunWorkflow.wait_settled,
            0,
            start_workflow_operation=operation,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            rpc_timeout=wait or ACCEPT_TIMEOUT,
        )
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        await _read_handle_future(operation)
        if _cancelling():
            raise
        raise NotAcceptedError(
            f"run {run.run_id} is started but no worker took it within "
            f"{(wait or ACCEPT_TIMEOUT).total_seconds():g} s; it runs when one does"
        ) from None
    except BaseException:
        await _read_handle_future(operation)
        raise
    handle = await operation.workflow_handle()
    if wait is None:
        return handle, None
    try:
        view = await asyncio.wait_for(update.result(), _remaining(deadline))
    except TimeoutError:
        return handle, None
    return handle, view


async def _read_handle_future(operation: WithStartWorkflowOperation[Any, Any]) -> None:
    # The SDK also puts a failure in the operation's handle future; read it so
    # asyncio does not report it as never retrieved.
    with contextlib.suppress(BaseException):
        await operation.workflow_handle()


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _deadline(wait: timedelta | None) -> float | None:
    return None if wait is None else asyncio.get_running_loop().time() + wait.total_seconds()


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(deadline - asyncio.get_running_loop().time(), 0.0)


def run_handle(client: Client, run_id: str) -> WorkflowHandle[AgentRunWorkflow, RunView]:
    """The handle of an existing run."""
    return client.get_workflow_handle_for(AgentRunWorkflow.run, workflow_id(run_id))


async def decide(
    handle: WorkflowHandle[AgentRunWorkflow, RunView],
    request: DecideRequest,
    *,
    wait: timedelta | None,
) -> DecideResult | None:
    """Send decisions through the ``decide`` update.

    Raises:
        temporalio.client.WorkflowUpdateFailedError: The workflow refused the
            decisions; the cause is an ``ApplicationError`` whose ``type`` is
            an :class:`~countersign.models.ErrorCode`.
        NotAcceptedError: No worker took them within ``wait`` (or
            ``ACCEPT_TIMEOUT``); Temporal keeps them for the run's next worker.

    Returns:
        The run after it settled again, or ``None`` when ``wait`` ran out first
        (the decisions are applied either way once accepted).
    """
    deadline = _deadline(wait)
    try:
        update = await handle.start_update(
            AgentRunWorkflow.decide,
            request,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            rpc_timeout=wait or ACCEPT_TIMEOUT,
        )
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        if _cancelling():
            raise
        raise NotAcceptedError(
            f"no worker took the decisions for {handle.id} within "
            f"{(wait or ACCEPT_TIMEOUT).total_seconds():g} s"
        ) from None
    if wait is None:
        return None
    try:
        return await asyncio.wait_for(update.result(), _remaining(deadline))
    except TimeoutError:
        return None
