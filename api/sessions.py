"""Sessions: who owns one, and its earlier conversation as context for a new run.

A session belongs to the principal that created it: its runs carry that
principal in the ``CountersignUserId`` search attribute (the run's ``user_id``,
which with authentication on is always the credentials' principal). Another
principal naming the session gets 409 ``session_owned``, and the context of a
run is read only from its owner's runs, so no principal sees or feeds another's
conversation. Visibility is eventually consistent: a session created a moment
ago may not refuse a second principal yet, but that principal's run still gets
none of its messages.
"""

from __future__ import annotations

import asyncio

from fastapi import status
from temporalio.client import Client

from api.errors import ApiError
from api.visibility import literal, visibility_query
from countersign import search_attributes as sa
from countersign.client import RunClient, run_id_of
from countersign.models import ChatMessage, ErrorCode, RunStatus


async def check_session_owner(client: Client, *, session_id: str, owner: str) -> None:
    """Refuse a session that runs of another principal already use.

    Raises:
        ApiError: 409 ``session_owned`` (the answer does not say whose it is).
    """
    query = visibility_query(
        {"session_id": (sa.SESSION_ID.name, session_id)},
        f"{sa.USER_ID.name} != {literal('user_id', owner)}",
    )
    async for _ in client.list_workflows(query, limit=1, page_size=1):
        raise ApiError(
            status.HTTP_409_CONFLICT,
            ErrorCode.SESSION_OWNED,
            f"session {session_id!r} belongs to another principal: "
            "name a session of your own, or none for a new one",
        )


async def session_context(
    client: Client, *, agent_id: str, session_id: str, owner: str, limit: int
) -> list[ChatMessage]:
    """The conversation of the owner's earlier completed runs of the session, oldest first.

    Each completed run contributes its user message and its final answer; the
    last ``limit`` messages are kept. Only runs of ``owner`` count, whatever
    else names the session. Visibility is eventually consistent, so a run that
    completed a moment ago may not be listed yet.
    """
    if limit <= 0:
        return []
    query = visibility_query(
        {
            "agent_id": (sa.AGENT_ID.name, agent_id),
            "session_id": (sa.SESSION_ID.name, session_id),
            "user_id": (sa.USER_ID.name, owner),
        },
        f"{sa.STATUS.name} = '{RunStatus.COMPLETED.value}'",
        "ExecutionStatus = 'Completed'",
    )
    # Closed runs are listed by close time, newest first: the newest are enough.
    wanted = (limit + 1) // 2
    executions = [e async for e in client.list_workflows(query, limit=wanted, page_size=wanted)]
    executions.sort(key=lambda e: e.start_time)
    views = await asyncio.gather(
        *(RunClient.of(client, run_id_of(e.id)).final_view() for e in executions)
    )
    messages: list[ChatMessage] = []
    for view in views:
        messages.append(ChatMessage(role="user", content=view.message))
        messages.append(ChatMessage(role="assistant", content=view.content or ""))
    return messages[-limit:]
