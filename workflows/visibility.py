"""What a run shows: its view, its search attributes and the UI's details text.

Pure functions of the run state; the workflow applies their results with
``workflow.upsert_search_attributes`` and ``workflow.set_current_details``.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeUpdate

from countersign import search_attributes as sa
from countersign.models import RunInput, RunState, RunView


def search_attribute_updates(state: RunState) -> list[SearchAttributeUpdate[Any]]:
    """The values that make the run listable: status and what awaits a decision."""
    pending = state.pending
    return [
        sa.STATUS.value_set(state.status.value),
        sa.PENDING_APPROVALS.value_set(len(pending)),
        # Sorted: a set's order would differ between processes and break replay.
        sa.PENDING_TOOLS.value_set(sorted({c.tool_name for c in pending})),
    ]


def current_details(state: RunState) -> str:
    """Markdown for the Temporal UI: the status, and each call awaiting a decision."""
    pending = state.pending
    if not pending:
        return f"**{state.status.value}**"
    lines = [f"**PAUSED**: {len(pending)} tool call(s) await confirmation", ""]
    for call in pending:
        assert call.policy is not None and call.expires_at is not None
        who = ", ".join(call.policy.approver_roles) or "any approver"
        lines.append(
            f"- `{call.tool_name}` `{call.tool_call_id}` args `{call.raw_arguments}`: "
            f"{len(call.approvals)}/{call.policy.approvals_required} approvals from {who}, "
            f"denied at {call.expires_at.isoformat()}"
        )
    return "\n".join(lines)


def run_view(run: RunInput, state: RunState) -> RunView:
    """The whole run as the ``state`` query, the updates and the result return it."""
    return RunView(
        run_id=run.run_id,
        agent_id=run.agent_id,
        session_id=run.session_id,
        user_id=run.user_id,
        status=state.status,
        content=state.content,
        message=run.message,
        created_at=state.created_at,
        updated_at=state.updated_at,
        tools=[c.view() for c in state.calls],
        messages=state.messages,
        turns=state.turns,
        pause_count=state.pause_count,
        settle_seq=state.settle_seq,
        error=state.error,
        model=state.model,
        demo_model=state.demo_model,
        usage=state.usage,
        requester=run.requester,
    )
