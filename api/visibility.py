"""Listing runs from Temporal's visibility store: queries, pages and their tokens.

Listings read the search attributes the workflow keeps up to date
(:mod:`countersign.search_attributes`), never the runs themselves, so they
lag slightly behind the runs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import unicodedata

from fastapi import status
from temporalio.client import Client, WorkflowExecution
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError
from api.schemas import RunListItem
from countersign import search_attributes as sa
from countersign.client import run_id_of
from countersign.models import RUN_WORKFLOW, ErrorCode, RunStatus


def literal(field: str, value: str) -> str:
    """``value`` quoted for a visibility query.

    Raises:
        ApiError: 422 ``invalid_request`` for a value with quotes,
            backslashes or control characters, which visibility queries cannot
            escape, or over 256 characters.
    """
    # A NUL in the query made Temporal's SQL visibility fail with Unavailable,
    # answered 503 after the client's retries.
    if (
        any(c in value for c in "'\"\\")
        or any(unicodedata.category(c) == "Cc" for c in value)
        or len(value) > 256
    ):
        raise ApiError.invalid(
            f"{field}: must not contain quotes, backslashes or control characters"
            " (max 256 characters)"
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


#: Marks a page token as this API's, so a stale format is told apart from garbage.
_TOKEN_VERSION = b"\x01"
_QUERY_DIGEST_BYTES = 8


def _query_digest(query: str) -> bytes:
    return hashlib.blake2b(query.encode(), digest_size=_QUERY_DIGEST_BYTES).digest()


def encode_page_token(query: str, token: bytes | None) -> str | None:
    """Temporal's next-page token, bound to the listing ``query`` it continues.

    Temporal's tokens are opaque, and a malformed one makes visibility fail in
    ways the SDK retries for seconds before giving up. Wrapping them with a
    digest of the query lets the API refuse, before asking Temporal, any token
    it did not return for this very listing (a typo, a truncated copy, a token
    of another filter).
    """
    if not token:
        return None
    return base64.urlsafe_b64encode(_TOKEN_VERSION + _query_digest(query) + token).decode()


def decode_page_token(query: str, page_token: str | None) -> bytes | None:
    """Temporal's token inside a page token this API returned for ``query``.

    Raises:
        ApiError: 422 ``invalid_page_token`` for any other string.
    """
    if not page_token:
        return None
    header = len(_TOKEN_VERSION) + _QUERY_DIGEST_BYTES
    try:
        raw = base64.b64decode(page_token.encode(), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if (
        len(raw) <= header
        or raw[: len(_TOKEN_VERSION)] != _TOKEN_VERSION
        or raw[len(_TOKEN_VERSION) : header] != _query_digest(query)
    ):
        raise ApiError(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            ErrorCode.INVALID_PAGE_TOKEN,
            "page_token: not a token this API returned for this listing "
            "(pass next_page_token from the previous page, with the same filters)",
        )
    return raw[header:]


async def list_page(
    client: Client, query: str, *, limit: int, page_token: str | None
) -> tuple[list[WorkflowExecution], str | None]:
    """One page of workflows matching ``query`` and the token of the next page.

    Raises:
        ApiError: 422 ``invalid_page_token`` for a page token this API did not
            return for ``query`` (Temporal is not asked), 422
            ``invalid_request`` for a query visibility refuses.
    """
    iterator = client.list_workflows(
        query, page_size=limit, next_page_token=decode_page_token(query, page_token)
    )
    try:
        await iterator.fetch_next_page()
    except RPCError as err:
        if err.status is RPCStatusCode.INVALID_ARGUMENT:
            raise ApiError.invalid(f"bad listing: {err}") from None
        raise
    return list(iterator.current_page or []), encode_page_token(query, iterator.next_page_token)


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
