"""The approvals inbox: the pending calls of the runs visibility lists as waiting.

Visibility says which runs wait for a decision; each run's ``state`` query says
which of its calls. The queries go out together, and one stuck run must not
take the whole inbox down: runs that closed meanwhile or cannot answer are
skipped, and only Temporal itself being unreachable fails the listing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from api import policy
from api.schemas import ApprovalList, ApprovalPublic
from api.visibility import list_page, pending_approvals_query
from countersign.client import RunClient, WorkerUnavailableError, run_id_of
from countersign.models import Principal, RunView

logger = logging.getLogger("countersign.api")

#: How long each run of a page has to answer its ``state`` query.
INBOX_QUERY_TIMEOUT = timedelta(seconds=5)


async def open_views(client: Client, executions: list[WorkflowExecution]) -> list[RunView]:
    """The views of listed runs that are still open and answer in time, queried together."""

    async def one(execution: WorkflowExecution) -> RunView | None:
        if execution.status not in (None, WorkflowExecutionStatus.RUNNING):
            return None
        run = RunClient.of(client, run_id_of(execution.id))
        try:
            return await run.open_view(answer_within=INBOX_QUERY_TIMEOUT)
        except WorkerUnavailableError as err:
            logger.warning(
                "inbox skips %s: %s", execution.id, err, extra={"workflow_id": execution.id}
            )
            return None

    found = await asyncio.gather(*(one(e) for e in executions))
    return [v for v in found if v is not None]


async def pending_approvals(
    client: Client,
    principal: Principal,
    *,
    agent_id: str | None,
    tool_name: str | None,
    user_id: str | None,
    limit: int,
    page_token: str | None,
) -> ApprovalList:
    """One inbox page: the pending calls of up to ``limit`` runs ``principal`` may read.

    Raises:
        ApiError: 422 for a bad filter or page token.
    """
    query = pending_approvals_query(agent_id, tool_name, user_id)
    executions, token = await list_page(client, query, limit=limit, page_token=page_token)
    views = await open_views(client, executions)
    approvals = [
        ApprovalPublic.of(view, call)
        for view in views
        if policy.can_read(principal, view)
        for call in view.pending
        if tool_name is None or call.tool_name == tool_name
    ]
    return ApprovalList(approvals=approvals, next_page_token=token)
