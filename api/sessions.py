"""A session's earlier conversation, given to a new run of the same session as context."""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from api.visibility import visibility_query
from countersign import search_attributes as sa
from countersign.client import RunClient, run_id_of
from countersign.models import ChatMessage, RunStatus


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
    views = await asyncio.gather(
        *(RunClient.of(client, run_id_of(e.id)).final_view() for e in executions)
    )
    messages: list[ChatMessage] = []
    for view in views:
        messages.append(ChatMessage(role="user", content=view.message))
        messages.append(ChatMessage(role="assistant", content=view.content or ""))
    return messages[-limit:]
