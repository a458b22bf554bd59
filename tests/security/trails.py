"""A well-formed audit trail, chained as the workflow chains it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from countersign.digest import GENESIS_HASH, audit_event_hash
from countersign.models import AuditEvent, AuditKind, Principal

START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
KINDS = [
    AuditKind.RUN_STARTED,
    AuditKind.APPROVAL_REQUESTED,
    AuditKind.DECISION_RECORDED,
    AuditKind.TOOL_EXECUTED,
    AuditKind.RUN_FINISHED,
]


def trail(run_id: str) -> list[AuditEvent]:
    """A well-formed five-event trail, chained as the workflow chains it."""
    events: list[AuditEvent] = []
    prev = GENESIS_HASH
    for seq, kind in enumerate(KINDS):
        draft = AuditEvent(
            seq=seq,
            at=START + timedelta(seconds=seq),
            kind=kind,
            run_id=run_id,
            tool_call_id="call-1" if seq else None,
            principal=Principal(id="alice", roles=("approver",)) if seq == 2 else None,
            detail=f"{kind.value} #{seq}",
            data={"count": 50} if seq == 1 else {},
            prev_hash=prev,
            hash="",
        )
        event = draft.model_copy(update={"hash": audit_event_hash(draft)})
        events.append(event)
        prev = event.hash
    return events
