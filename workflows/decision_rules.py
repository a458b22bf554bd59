"""The decision rules of a gated tool call, as pure functions.

``check`` decides whether a decide request may change anything (all or
nothing); ``apply`` records an accepted decision on its call. The other
functions are the remaining transitions of a gated call: the pause
(``await_confirmation``), the TTL deny (``expire``) and the deny of a run
cancellation (``cancel``). They take the time as an argument and make no
Temporal calls, so they run the same inside the workflow (with
``workflow.now()``) and in unit tests without a server. The state machine is
drawn in ``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from temporalio.exceptions import ApplicationError

from countersign import access
from countersign.digest import args_digest
from countersign.models import (
    CallRecord,
    CallState,
    DecideRequest,
    Decision,
    DecisionInput,
    DecisionSource,
    ErrorCode,
    JsonObject,
    Principal,
    RunInput,
    RunStatus,
    TimeoutAction,
)


class RefusalError(ApplicationError):
    """A request refused by the rules; its ``type`` is the stable :class:`ErrorCode`.

    An ``ApplicationError`` so that the update validator can raise it as it is:
    the client sees ``type`` and ``message``, and the API maps the code to an
    HTTP status. Non-retryable: the same request would be refused again.
    """

    def __init__(self, code: ErrorCode, message: str, tool_call_id: str | None = None) -> None:
        super().__init__(message, tool_call_id, type=code.value, non_retryable=True)
        self.code = code
        self.tool_call_id = tool_call_id


def find(calls: Sequence[CallRecord], tool_call_id: str) -> CallRecord | None:
    """The call of the run with this id, if any."""
    return next((c for c in calls if c.tool_call_id == tool_call_id), None)


def check(
    request: DecideRequest,
    calls: Sequence[CallRecord],
    requester: Principal,
    now: datetime,
) -> None:
    """Refuse a request that must not change anything; all or nothing.

    Args:
        request: The decisions and who makes them.
        calls: Every call of the run.
        requester: Who started the run (for the self-approval rule).
        now: The current time (a decision at or after a deadline is refused).

    Raises:
        RefusalError: For the first decision that may not be applied.
    """
    if not request.decisions:
        raise RefusalError(ErrorCode.EMPTY_DECISION, "no decisions in the request")
    seen: set[str] = set()
    for decision in request.decisions:
        call_id = decision.tool_call_id
        if call_id in seen:
            raise RefusalError(
                ErrorCode.DUPLICATE_CALL,
                f"tool call {call_id} is named twice in one request",
                call_id,
            )
        seen.add(call_id)
        record = find(calls, call_id)
        if record is None:
            raise RefusalError(ErrorCode.UNKNOWN_CALL, f"run has no tool call {call_id}", call_id)
        check_one(decision, record, request.principal, requester, now)


def check_deadline(request: DecideRequest, now: datetime) -> None:
    """Refuse decisions that reach the run after their sender stopped waiting.

    Raises:
        RefusalError: ``decision_too_late``.
    """
    if request.not_after is not None and now > request.not_after:
        raise RefusalError(
            ErrorCode.TOO_LATE,
            f"the decisions reached a worker after {request.not_after.isoformat()}, when their"
            " sender stopped waiting for one (or the sender's clock is behind the worker's)",
        )


def check_scope(
    request: DecideRequest, run: RunInput, status: RunStatus, calls: Sequence[CallRecord]
) -> None:
    """Refuse decisions sent without a read of the run that the read would have refused.

    The API checks a run it read itself; for a request with a ``scope`` it
    did not, so these checks come first in the validator, in the API's order.
    The API redoes a request refused with one of
    :data:`countersign.access.READ_FIRST` on the path that reads the run,
    which answers it as it always did.

    Raises:
        RefusalError: ``unknown_run`` (another agent's run, or one the
            principal may not read), ``forbidden``, ``session_mismatch``,
            ``not_paused``, or ``invalid_tool_args`` for an edit, which only
            that path may send.
    """
    scope = request.scope
    if scope is None:
        return
    principal = request.principal
    gated = any(c.policy is not None for c in calls)
    if scope.agent_id != run.agent_id or not access.can_read(principal, run.requester, gated=gated):
        raise RefusalError(ErrorCode.UNKNOWN_RUN, access.unknown_run(run.run_id))
    if not access.can_decide(principal, run.requester):
        raise RefusalError(ErrorCode.FORBIDDEN, f"{principal.id} may not decide run {run.run_id}")
    if scope.session_id is not None and scope.session_id != run.session_id:
        raise RefusalError(
            ErrorCode.SESSION_MISMATCH, access.session_mismatch(run.run_id, scope.session_id)
        )
    if status is not RunStatus.PAUSED:
        raise RefusalError(ErrorCode.NOT_PAUSED, access.not_paused(run.run_id, status))
    for decision in request.decisions:
        record = find(calls, decision.tool_call_id)
        if record is not None and _edited_args(decision, record) is not None:
            raise RefusalError(
                ErrorCode.INVALID_ARGS,
                f"edited arguments of {record.tool_call_id} were not checked against"
                " the tool's schema",
                record.tool_call_id,
            )


def check_operator(principal: Principal, operator_ids: Sequence[str]) -> None:
    """Refuse a decision by signal from anyone but the run's operators.

    A signal carries no proof from the API, so only identities named in
    settings when the run started may decide that way.

    Raises:
        RefusalError: ``unauthorised_decision``.
    """
    if principal.id not in operator_ids:
        raise RefusalError(
            ErrorCode.UNAUTHORISED_DECISION,
            f"{principal.id} is not an operator: decisions by signal are"
            " accepted only from COUNTERSIGN_OPERATOR_IDS",
        )


def check_wait(after_seq: int, settle_seq: int) -> None:
    """Refuse a wait for a settle after ``after_seq`` when the run has not reached it.

    Such a wait could last forever, and an open handler keeps the run from
    completing.

    Raises:
        RefusalError: ``settle_seq_ahead``.
    """
    if after_seq > settle_seq:
        raise RefusalError(
            ErrorCode.SEQ_AHEAD,
            f"the run has settled {settle_seq} times; it cannot be waited on"
            f" from settle {after_seq}",
        )


def check_one(
    decision: DecisionInput,
    record: CallRecord,
    principal: Principal,
    requester: Principal,
    now: datetime,
) -> None:
    """Refuse one decision on ``record`` that the rules do not allow.

    Raises:
        RefusalError: Why the decision may not be applied.
    """
    call_id = record.tool_call_id
    if record.state is CallState.EXPIRED or (record.awaiting and _past_deadline(record, now)):
        assert record.expires_at is not None
        raise RefusalError(
            ErrorCode.EXPIRED,
            f"confirmation of {call_id} expired at {record.expires_at.isoformat()}",
            call_id,
        )
    if record.state is CallState.CANCELLED:
        raise RefusalError(
            ErrorCode.CALL_CANCELLED,
            f"tool call {call_id} was denied because its run was cancelled",
            call_id,
        )
    if record.policy is None or record.state in (CallState.PENDING, CallState.INVALID):
        raise RefusalError(
            ErrorCode.NOT_AWAITING, f"tool call {call_id} does not await confirmation", call_id
        )
    if not record.awaiting:
        last = record.decisions[-1] if record.decisions else None
        by = f" by {last.principal.id}" if last else ""
        raise RefusalError(
            ErrorCode.ALREADY_DECIDED,
            f"tool call {call_id} was already decided{by} ({record.state.value})",
            call_id,
        )
    if decision.tool_name is not None and decision.tool_name != record.tool_name:
        raise RefusalError(
            ErrorCode.TOOL_MISMATCH,
            f"tool call {call_id} is {record.tool_name}, not {decision.tool_name}",
            call_id,
        )
    if decision.args_digest is not None and decision.args_digest != record.args_digest:
        raise RefusalError(
            ErrorCode.ARGS_MISMATCH,
            f"args_digest does not match the arguments of {call_id}",
            call_id,
        )
    policy = record.policy
    if _edited_args(decision, record) is not None:
        if not policy.allow_edit:
            raise RefusalError(
                ErrorCode.ARGS_MISMATCH,
                f"tool_args differ from the pending arguments of {call_id}"
                f" and {record.tool_name} does not allow edits",
                call_id,
            )
        if policy.approvals_required > 1:
            # Each approver must approve the same arguments; an edit by one
            # would stand on the others' approvals of something else.
            raise RefusalError(
                ErrorCode.ARGS_MISMATCH,
                f"{record.tool_name} needs several approvals, so its arguments cannot be"
                " edited by one approver",
                call_id,
            )
    if policy.approver_roles and not principal.has_any_role(policy.approver_roles):
        raise RefusalError(
            ErrorCode.FORBIDDEN_ROLE,
            f"deciding {record.tool_name} needs one of the roles "
            f"{', '.join(policy.approver_roles)}",
            call_id,
        )
    if decision.confirmed:
        if principal.id == requester.id and not policy.allow_self_approval:
            raise RefusalError(
                ErrorCode.SELF_APPROVAL,
                f"{principal.id} requested this run and cannot approve {record.tool_name}",
                call_id,
            )
        if any(d.principal.id == principal.id for d in record.approvals):
            raise RefusalError(
                ErrorCode.ALREADY_APPROVED_BY,
                f"{principal.id} has already approved {call_id}; another approver is needed",
                call_id,
            )


def apply(
    decision: DecisionInput,
    record: CallRecord,
    principal: Principal,
    source: DecisionSource,
    now: datetime,
) -> Decision:
    """Record a decision that :func:`check_one` accepted, and move the call on.

    A rejection ends the call as ``REJECTED``; an approval that completes the
    required count makes it ``APPROVED`` (with the edited arguments, if any);
    an approval short of the count leaves it awaiting.

    Returns:
        The decision as recorded on the call.
    """
    assert record.policy is not None
    edited = _edited_args(decision, record) if decision.confirmed else None
    recorded = Decision(
        principal=principal,
        confirmed=decision.confirmed,
        note=decision.note,
        source=source,
        decided_at=now,
        edited_args=edited,
    )
    record.decisions.append(recorded)
    if not decision.confirmed:
        record.state = CallState.REJECTED
        note = f": {decision.note}" if decision.note else ""
        record.result = f"rejected by {principal.id}{note}"
    elif len(record.approvals) >= record.policy.approvals_required:
        record.state = CallState.APPROVED
        if edited is not None:
            record.tool_args = edited
            record.args_digest = args_digest(edited)
    return recorded


def await_confirmation(record: CallRecord, now: datetime) -> None:
    """Pause a gated call: it now waits for decisions until ``now`` plus its TTL."""
    assert record.policy is not None and record.state is CallState.PENDING
    record.state = CallState.AWAITING_CONFIRMATION
    record.expires_at = now + record.policy.ttl


def expire(record: CallRecord) -> str:
    """Deny a waiting call whose TTL ran out; returns the result the model reads."""
    assert record.awaiting and record.expires_at is not None
    record.state = CallState.EXPIRED
    record.result = f"denied: confirmation expired at {record.expires_at.isoformat()}"
    return record.result


def run_cancelled_by(record: CallRecord) -> str | None:
    """Why the run is cancelled when ``record`` expired, if its policy says to cancel it."""
    assert record.policy is not None and record.expires_at is not None
    if record.state is not CallState.EXPIRED or record.policy.on_timeout is TimeoutAction.DENY:
        return None
    return (
        f"run cancelled: confirmation of {record.tool_name} ({record.tool_call_id})"
        f" expired at {record.expires_at.isoformat()}"
    )


def cancel(record: CallRecord, reason: str, *, state: CallState = CallState.CANCELLED) -> str:
    """Deny a waiting call because its run was cancelled.

    Args:
        record: A call awaiting confirmation.
        reason: Why the run was cancelled, for the result the model reads.
        state: ``EXPIRED`` only to replay runs recorded before ``CANCELLED`` existed.

    Returns:
        The result the model reads.
    """
    assert record.awaiting
    record.state = state
    record.result = f"denied: {reason}"
    return record.result


def due(record: CallRecord, now: datetime) -> bool:
    """Whether a waiting call's TTL has run out at ``now``."""
    return record.awaiting and _past_deadline(record, now)


def _past_deadline(record: CallRecord, now: datetime) -> bool:
    assert record.expires_at is not None
    return now >= record.expires_at


def _edited_args(decision: DecisionInput, record: CallRecord) -> JsonObject | None:
    """The decision's arguments when they differ from the pending ones, else ``None``."""
    if decision.tool_args is None or args_digest(decision.tool_args) == record.args_digest:
        return None
    return decision.tool_args
