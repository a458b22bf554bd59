"""Listing runs from Temporal's visibility store: queries, pages and their tokens.

Listings read the search attributes the workflow keeps up to date
(:mod:`countersign.search_attributes`), never the runs themselves, so they
lag slightly behind the runs.
"""

from __future__ import annotations

import base64
import binascii

from temporalio.client import Client, WorkflowExecution
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError
from api.schemas import RunListItem
from countersign import search_attributes as sa
from countersign.client import run_id_of
from countersign.models import RUN_WORKFLOW, RunStatus


def literal(field: str, value: str) -> str:
    """``value`` quoted for a visibility query.

    Raises:
        ApiError: 422 ``invalid_request`` for a value with quotes or
            backslashes, which visibility queries cannot escape, or over 256
            characters.
    """
    if any(c in value for c in "'\"\\") or len(value) > 256:
        raise ApiError.invalid(
            f"{field}: must not contain quotes or backslashes (max 256 characters)"
        )
    return f"'{value}'"


def visibility_query(filters: dict[str, tuple[str, str | None]], *extra: str) -> str:
    """A visibility query from ``{param: (search attribute, value)}`` and extra clauses."""
    clauses = [f"WorkflowType = '{RUN_WORKFLOW}'", *extra]
    for param, (attribute, value) in filters.items():
        if value is not None:
            clauses.append(f"{attribute} = {literal(param, value)}")
    return " AND ".join(clauses)


def pending_approvals_query(
    agent_id: str | None, tool_name: str | None, user_id: str | None = None
) -> str:
    """Visibility query of the runs that wait for at least one decision."""
    extra = [f"{sa.PENDING_APPROVALS.name} > 0", "ExecutionStatus = 'Running'"]
    if tool_name is not None:
        extra.append(f"{sa.PENDING_TOOLS.name} = {literal('tool_name', tool_name)}")
    return visibility_query(
        {"agent_id": (sa.AGENT_ID.name, agent_id), "user_id": (sa.USER_ID.name, user_id)},
        *extra,
    )


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
        raise ApiError.invalid("page_token: not a token this API returned") from None


async def list_page(
    client: Client, query: str, *, limit: int, page_token: str | None
) -> tuple[list[WorkflowExecution], str | None]:
    """One page of workflows matching ``query`` and the token of the next page.

    Raises:
        ApiError: 422 for a page token this API did not issue or a query
            visibility refuses.
    """
    iterator = client.list_workflows(
        query, page_size=limit, next_page_token=_decode_token(page_token)
    )
    try:
        await iterator.fetch_next_page()
    except RPCError as err:
        if err.status is RPCStatusCode.INVALID_ARGUMENT:
            raise ApiError.invalid(f"bad listing: {err}") from None
        raise
    return list(iterator.current_page or []), _encode_token(iterator.next_page_token)


def list_item(execution: WorkflowExecution) -> RunListItem:
    """A listing row from visibility alone."""
    attrs = execution.typed_search_attributes
    status_value = attrs.get(sa.STATUS)
    return RunListItem(
        run_id=run_id_of(execution.id),
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
