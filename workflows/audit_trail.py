"""A run's audit trail: events appended to a SHA-256 hash chain.

Pure: the caller passes the time, so the workflow passes ``workflow.now()``
and replays build the same chain. Verification lives beside the hashing in
:mod:`countersign.digest`.
"""

from __future__ import annotations

from datetime import datetime

from countersign.digest import GENESIS_HASH, audit_event_hash
from countersign.models import AuditEvent, AuditKind, DecisionSource, JsonObject, Principal


def append(
    trail: list[AuditEvent],
    kind: AuditKind,
    *,
    at: datetime,
    run_id: str,
    tool_call_id: str | None = None,
    principal: Principal | None = None,
    source: DecisionSource | None = None,
    detail: str = "",
    data: JsonObject | None = None,
) -> AuditEvent:
    """Append one event to ``trail``, chained to the last one by its hash.

    Returns:
        The event appended.
    """
    event = AuditEvent(
        seq=len(trail),
        at=at,
        kind=kind,
        run_id=run_id,
        tool_call_id=tool_call_id,
        principal=principal,
        source=source,
        detail=detail,
        data=data or {},
        prev_hash=trail[-1].hash if trail else GENESIS_HASH,
        hash="",
    )
    event.hash = audit_event_hash(event)
    trail.append(event)
    return event
