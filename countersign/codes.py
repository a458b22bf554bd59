"""The stable strings a run is spoken of in: handler and activity names,
statuses, call states, error codes, decision sources, audit kinds and webhook
events.

They reach workflow history, the wire format and the CLI's output, so they
never change once released; add new members beside the old ones.
``countersign.models`` re-exports them beside the messages that carry them.
"""

from __future__ import annotations

from enum import StrEnum

MODEL_TURN_ACTIVITY = "model_turn"
EXECUTE_TOOL_ACTIVITY = "execute_tool"
DELIVER_WEBHOOK_ACTIVITY = "deliver_webhook"

# The run workflow's type and handler names. The workflow declares its handlers
# with these and the client calls them by these, so the client never imports
# the workflow module (which imports this package).
RUN_WORKFLOW = "AgentRunWorkflow"
DECIDE_UPDATE = "decide"
WAIT_SETTLED_UPDATE = "wait_settled"
DECIDE_SIGNAL = "decide_signal"
RECORD_REFUSAL_SIGNAL = "record_refused_attempt"
STATE_QUERY = "state"
AUDIT_QUERY = "audit"


class RunStatus(StrEnum):
    """Run status, with the same strings as the AgentOS wire format."""

    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        """Whether the run can no longer change."""
        return self in (RunStatus.COMPLETED, RunStatus.ERROR, RunStatus.CANCELLED)


class CallState(StrEnum):
    """Where one tool call is in its state machine (see ``docs/architecture.md``).

    ``EXPIRED`` is a call whose confirmation time-to-live ran out; ``CANCELLED``
    a call still waiting when its run was cancelled. Both are denies.
    """

    PENDING = "PENDING"
    INVALID = "INVALID"
    AWAITING_CONFIRMATION = "AWAITING_CONFIRMATION"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    EXECUTING = "EXECUTING"
    EXECUTED = "EXECUTED"
    FAILED = "FAILED"

    @property
    def is_outcome(self) -> bool:
        """Whether a pending confirmation has been resolved one way or another."""
        return self not in (CallState.PENDING, CallState.AWAITING_CONFIRMATION)


class TimeoutAction(StrEnum):
    """What happens when a confirmation's time-to-live runs out."""

    DENY = "deny"
    CANCEL_RUN = "cancel_run"


class DecisionSource(StrEnum):
    """The channel a decision arrived through, recorded in the audit trail."""

    API = "api"
    SIGNAL = "signal"
    TOKEN = "token"


class ErrorCode(StrEnum):
    """Stable machine-readable reasons for refusing a request: the ``code`` of every error.

    The workflow raises the decision refusals as the ``type`` of an
    ``ApplicationError`` from the ``decide`` validator; the API maps each to an
    HTTP status (``api.errors.REFUSAL_STATUS``) and adds its own codes below;
    the CLI prints them. ``docs/architecture.md`` lists them with their status.
    """

    NOT_PAUSED = "not_paused"
    NOT_AWAITING = "not_awaiting_confirmation"
    UNKNOWN_CALL = "unknown_tool_call"
    DUPLICATE_CALL = "duplicate_tool_call"
    ALREADY_DECIDED = "already_decided"
    EXPIRED = "confirmation_expired"
    TOOL_MISMATCH = "tool_name_mismatch"
    ARGS_MISMATCH = "args_mismatch"
    INVALID_ARGS = "invalid_tool_args"
    EMPTY_DECISION = "empty_decision"
    FORBIDDEN_ROLE = "approver_role_required"
    SELF_APPROVAL = "self_approval_forbidden"
    ALREADY_APPROVED_BY = "already_approved_by_principal"
    CALL_CANCELLED = "call_cancelled"
    SEQ_AHEAD = "settle_seq_ahead"
    #: A decision without the API's proof, or a signal from a non-operator.
    UNAUTHORISED_DECISION = "unauthorised_decision"
    #: Decisions a worker took after their sender stopped waiting. Never an
    #: HTTP code: the run client reports them as not accepted (503
    #: ``worker_unavailable``), which is what their sender already answered.
    TOO_LATE = "decision_too_late"

    # The API's own: requests refused before any run is asked.
    INVALID_REQUEST = "invalid_request"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    GONE = "gone"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNKNOWN_AGENT = "unknown_agent"
    UNKNOWN_RUN = "unknown_run"
    UNKNOWN_APPROVAL = "unknown_approval"
    SESSION_MISMATCH = "session_mismatch"
    SESSION_OWNED = "session_owned"
    INVALID_PAGE_TOKEN = "invalid_page_token"
    UNAUTHENTICATED = "unauthenticated"
    AUTH_MISCONFIGURED = "auth_misconfigured"
    JWKS_UNAVAILABLE = "jwks_unavailable"
    FORBIDDEN = "forbidden"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    DECISION_TOKENS_DISABLED = "decision_tokens_disabled"
    SHUTTING_DOWN = "shutting_down"
    TEMPORAL_UNAVAILABLE = "temporal_unavailable"
    WORKER_UNAVAILABLE = "worker_unavailable"
    TEMPORAL_ERROR = "temporal_error"
    INTERNAL_ERROR = "internal_error"
    #: An HTTP error of a status no other code names.
    ERROR = "error"


class AuditKind(StrEnum):
    """Kinds of audit events."""

    RUN_STARTED = "run.started"
    APPROVAL_REQUESTED = "approval.requested"
    DECISION_RECORDED = "approval.decided"
    DECISION_REFUSED = "approval.refused"
    APPROVAL_EXPIRED = "approval.expired"
    APPROVAL_CANCELLED = "approval.cancelled"
    TOOL_EXECUTED = "tool.executed"
    TOOL_FAILED = "tool.failed"
    RUN_FINISHED = "run.finished"


class WebhookEvent(StrEnum):
    """Events pushed to webhook receivers."""

    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_DECIDED = "approval.decided"
    APPROVAL_EXPIRED = "approval.expired"
    RUN_COMPLETED = "run.completed"
