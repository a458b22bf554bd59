"""A run's audit trail: what each event says, appended to a SHA-256 hash chain.

Pure: the caller passes the time, so the workflow passes ``workflow.now()``
and replays build the same chain. Verification lives beside the hashing in
:mod:`countersign.digest`.
"""

from __future__ import annotations

from datetime import datetime

from countersign.digest import GENESIS_HASH, audit_event_hash
from countersign.models import (
    AuditEvent,
    AuditKind,
    CallRecord,
    CallState,
    Decision,
    DecisionSource,
    JsonObject,
    Principal,
    RefusedAttempt,
    RunStatus,
)


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


#: Principal-and-code pairs whose repeated refusals are counted apart, per pause.
MAX_TRACKED_REFUSERS = 32
#: The shared count of refusals past ``MAX_TRACKED_REFUSERS``.
OTHERS = "* others"


class AuditTrail:
    """The events of one run, each worded once here."""

    def __init__(self, trail: list[AuditEvent], run_id: str) -> None:
        self._trail = trail
        self._run_id = run_id

    def add(
        self,
        kind: AuditKind,
        at: datetime,
        *,
        tool_call_id: str | None = None,
        principal: Principal | None = None,
        source: DecisionSource | None = None,
        detail: str = "",
        data: JsonObject | None = None,
    ) -> None:
        """Append an event of ``kind`` to the run's chain."""
        append(
            self._trail,
            kind,
            at=at,
            run_id=self._run_id,
            tool_call_id=tool_call_id,
            principal=principal,
            source=source,
            detail=detail,
            data=data,
        )

    def approval_requested(self, record: CallRecord, at: datetime) -> None:
        """A gated call starts waiting: what it is, and what its approval takes."""
        assert record.policy is not None and record.expires_at is not None
        self.add(
            AuditKind.APPROVAL_REQUESTED,
            at,
            tool_call_id=record.tool_call_id,
            detail=f"{record.tool_name} awaits confirmation",
            data={
                "tool_name": record.tool_name,
                "tool_args": record.tool_args,
                "args_digest": record.args_digest,
                "expires_at": record.expires_at.isoformat(),
                "approvals_required": record.policy.approvals_required,
                "approver_roles": list(record.policy.approver_roles),
            },
        )

    def decision_recorded(
        self, record: CallRecord, decision: Decision, at: datetime, minted_by: str | None = None
    ) -> None:
        """A decision was applied to ``record`` (``minted_by``: who issued its decision link)."""
        assert record.policy is not None
        note = f": {decision.note}" if decision.note else ""
        self.add(
            AuditKind.DECISION_RECORDED,
            at,
            tool_call_id=record.tool_call_id,
            principal=decision.principal,
            source=decision.source,
            detail=("approved" if decision.confirmed else "rejected") + note,
            data={
                "confirmed": decision.confirmed,
                "args_digest": record.args_digest,
                "edited": decision.edited_args is not None,
                "approvals": len(record.approvals),
                "approvals_required": record.policy.approvals_required,
                "state": record.state.value,
                # Only links carry it, so earlier trails hash as they did.
                **({"minted_by": minted_by} if minted_by else {}),
            },
        )

    def refused(self, attempt: RefusedAttempt, at: datetime) -> None:
        """A refused decision, with how many call ids it named when it kept only some."""
        data: JsonObject = {"code": attempt.code, "tool_call_ids": list(attempt.tool_call_ids)}
        if attempt.tool_call_count > len(attempt.tool_call_ids):
            data["tool_call_count"] = attempt.tool_call_count
        self.add(
            AuditKind.DECISION_REFUSED,
            at,
            tool_call_id=attempt.tool_call_ids[0] if len(attempt.tool_call_ids) == 1 else None,
            principal=attempt.principal,
            source=attempt.source,
            detail=f"{attempt.code}: {attempt.reason}",
            data=data,
        )

    def refusal_counted(self, repeats: dict[str, int], attempt: RefusedAttempt) -> bool:
        """Count a refusal; whether it is the first of its principal and code since the last
        summary, and so recorded in full.

        ``repeats`` (kept in the run state) holds, per principal and code, the
        refusals not recorded one by one. It tracks at most
        ``MAX_TRACKED_REFUSERS`` of them; the rest share one count.
        """
        key = f"{attempt.code} {attempt.principal.id}"
        if key not in repeats:
            if len(repeats) < MAX_TRACKED_REFUSERS:
                repeats[key] = 0
                return True
            key = OTHERS
        repeats[key] = repeats.get(key, 0) + 1
        return False

    def refusals_summarised(self, repeats: dict[str, int], at: datetime) -> None:
        """One event per principal and code refused again since the last summary."""
        for key, count in repeats.items():
            if count:
                code, principal_id = key.split(" ", 1)
                self.add(
                    AuditKind.DECISION_REFUSED,
                    at,
                    detail=f"{code}: {count} more refused attempt(s) by {principal_id}",
                    data={"code": code, "principal_id": principal_id, "repeated": count},
                )
        repeats.clear()

    def tool_finished(self, record: CallRecord, at: datetime) -> None:
        """A call ran (or failed to)."""
        executed = record.state is CallState.EXECUTED
        self.add(
            AuditKind.TOOL_EXECUTED if executed else AuditKind.TOOL_FAILED,
            at,
            tool_call_id=record.tool_call_id,
            detail=record.result or "",
            data={"tool_name": record.tool_name, "args_digest": record.args_digest},
        )

    def run_finished(self, status: RunStatus, error: str | None, at: datetime) -> None:
        """The run ended."""
        self.add(
            AuditKind.RUN_FINISHED,
            at,
            detail=status.value + (f": {error}" if error else ""),
            data={"status": status.value},
        )
