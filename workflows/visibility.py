"""What a run shows outside its state: search attributes and the UI's details text.

Pure functions of the run state; the workflow applies their results with
``workflow.upsert_search_attributes`` and ``workflow.set_current_details``.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeUpdate

from countersign import search_attributes as sa
from countersign.models import RunState


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
