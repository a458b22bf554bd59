"""Typed messages that cross a boundary: workflow input, activity payloads,
update and query payloads, and the run view that the API returns.

The workflow, the activities, the API and the CLI all import these, so each
fact about a run has one definition. Everything here is a pydantic model and
travels through Temporal with the pydantic data converter.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from countersign import limits
from countersign.codes import (
    AUDIT_QUERY,
    DECIDE_SIGNAL,
    DECIDE_UPDATE,
    DELIVER_WEBHOOK_ACTIVITY,
    EXECUTE_TOOL_ACTIVITY,
    MODEL_TURN_ACTIVITY,
    RECORD_REFUSAL_SIGNAL,
    RUN_WORKFLOW,
    STATE_QUERY,
    WAIT_SETTLED_UPDATE,
    AuditKind,
    CallState,
    DecisionSource,
    ErrorCode,
    RunStatus,
    TimeoutAction,
    WebhookEvent,
)
from countersign.limits import Id, RunOptions

JsonObject = dict[str, JsonValue]


class Principal(BaseModel):
    """Who is acting: an authenticated identity and its roles.

    Only the id and the roles ever enter workflow history; credentials never do.
    """

    model_config = ConfigDict(frozen=True)

    id: Id
    roles: tuple[str, ...] = ()

    def has_any_role(self, roles: list[str]) -> bool:
        """Whether the principal holds at least one of ``roles`` (or ``admin``)."""
        return "admin" in self.roles or any(role in self.roles for role in roles)


class ConfirmationPolicy(BaseModel):
    """A gated call's confirmation rules, resolved from the tool when it was called."""

    approver_roles: list[str] = Field(default_factory=list)
    approvals_required: int = 1
    allow_self_approval: bool = True
    ttl: timedelta = timedelta(hours=24)
    on_timeout: TimeoutAction = TimeoutAction.DENY
    allow_edit: bool = False


class Usage(BaseModel):
    """Token usage of model calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def plus(self, other: Usage) -> Usage:
        """Return the sum of two usages."""
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class ModelToolCall(BaseModel):
    """A tool call as the model emitted it, arguments still as raw JSON text."""

    tool_call_id: str
    tool_name: str
    arguments: str


class ChatMessage(BaseModel):
    """One item of the conversation that the workflow keeps and sends to the model."""

    role: Literal["user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ModelToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    tool_name: str | None = None


class ProposedCall(BaseModel):
    """A tool call from the model, checked against the tool before any pause.

    ``arguments_error`` is set when the arguments fail the tool's schema (or the
    tool is unknown): such a call never reaches a person and its error goes back
    to the model. ``confirmation`` is set when the call must be confirmed.
    """

    tool_call_id: str
    tool_name: str
    raw_arguments: str = "{}"
    tool_args: JsonObject = Field(default_factory=dict)
    arguments_error: str | None = None
    confirmation: ConfirmationPolicy | None = None


class ModelTurnInput(BaseModel):
    """Input of the ``model_turn`` activity."""

    run_id: str
    agent_id: str
    turn: int
    messages: list[ChatMessage]
    default_confirmation_ttl: timedelta = timedelta(hours=24)


class ModelTurn(BaseModel):
    """Output of the ``model_turn`` activity: final text, tool calls, or both."""

    content: str | None = None
    calls: list[ProposedCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model: str
    demo: bool = False


class ToolInvocation(BaseModel):
    """Input of the ``execute_tool`` activity."""

    run_id: str
    agent_id: str
    tool_call_id: str
    tool_name: str
    tool_args: JsonObject
    idempotency_key: str
    output_limit: int


class ToolResult(BaseModel):
    """Output of the ``execute_tool`` activity.

    ``output`` is capped at the invocation's ``output_limit``; ``truncated`` and
    ``original_length`` record that the cap applied.
    """

    ok: bool
    output: str
    truncated: bool = False
    original_length: int = 0


class Decision(BaseModel):
    """A decision recorded on a call."""

    principal: Principal
    confirmed: bool
    note: str | None = None
    source: DecisionSource = DecisionSource.API
    decided_at: datetime
    edited_args: JsonObject | None = None


class DecisionInput(BaseModel):
    """One decision as requested: a call, approve or reject, and what was shown.

    ``tool_name``, ``tool_args`` and ``args_digest`` are optional echoes; when
    given they must match the pending call, which binds the decision to what the
    approver saw. ``tool_args`` that differ are an edit, accepted only when the
    tool allows edits.
    """

    tool_call_id: Id
    confirmed: bool
    note: str | None = Field(None, max_length=2000)
    tool_name: Id | None = None
    tool_args: JsonObject | None = None
    args_digest: Id | None = None


class DecisionScope(BaseModel):
    """What the API would have checked on a run it read, for the validator to check instead.

    Sent with a decision the API did not read the run for (``/continue``):
    the ``decide`` validator refuses it unless the run is this agent's, in
    this session, readable and decidable by the principal, and it edits no
    arguments (edits are checked against the tool's schema by the API, on the
    path that reads the run first).
    """

    agent_id: Id
    session_id: str | None = None


class DecideRequest(BaseModel):
    """Payload of the ``decide`` update and signal."""

    decisions: list[DecisionInput] = Field(max_length=limits.MAX_DECISIONS_PER_REQUEST)
    principal: Principal
    source: DecisionSource = DecisionSource.API
    #: The API's HMAC over the rest (``countersign.decision_proof``); checked
    #: by the ``decide`` validator when the worker has proof keys.
    proof: str | None = None
    #: Who issued the decision link this decision was redeemed from.
    minted_by: str | None = None
    #: Set when the API sent the decisions without reading the run first.
    scope: DecisionScope | None = None
    #: When the sender stops waiting for a worker to take the decisions: the
    #: validator refuses them after it, so an API that answered 503 (no worker
    #: took them) did not leave them to apply later behind its caller's back.
    not_after: datetime | None = None


class AuditEvent(BaseModel):
    """One link of a run's tamper-evident audit trail.

    ``hash`` is SHA-256 over ``prev_hash`` and the canonical JSON of the other
    fields, so changing, removing or reordering an event breaks the chain.
    """

    seq: int
    at: datetime
    kind: AuditKind
    run_id: str
    tool_call_id: str | None = None
    principal: Principal | None = None
    source: DecisionSource | None = None
    detail: str = ""
    data: JsonObject = Field(default_factory=dict)
    prev_hash: str
    hash: str


class ToolCallView(BaseModel):
    """One tool call of a run, in the AgentOS wire format plus our additions."""

    tool_call_id: str
    tool_name: str
    tool_args: JsonObject
    requires_confirmation: bool
    confirmed: bool | None = None
    confirmation_note: str | None = None
    result: str | None = None
    tool_call_error: bool | None = None
    state: CallState
    turn: int
    args_digest: str
    expires_at: datetime | None = None
    approvals_required: int = 0
    approver_roles: list[str] = Field(default_factory=list)
    allow_edit: bool = False
    decisions: list[Decision] = Field(default_factory=list)
    result_truncated: bool = False

    @property
    def awaiting(self) -> bool:
        """Whether the call waits for a decision."""
        return self.state is CallState.AWAITING_CONFIRMATION


class CallRecord(BaseModel):
    """The workflow's own record of one tool call (its view is ``ToolCallView``)."""

    tool_call_id: str
    tool_name: str
    tool_args: JsonObject
    raw_arguments: str = "{}"
    turn: int
    state: CallState = CallState.PENDING
    args_digest: str
    policy: ConfirmationPolicy | None = None
    arguments_error: str | None = None
    expires_at: datetime | None = None
    decisions: list[Decision] = Field(default_factory=list)
    result: str | None = None
    result_truncated: bool = False
    # The model's id when the run gave the call its own; the model still reads its id.
    model_call_id: str | None = None

    @property
    def approvals(self) -> list[Decision]:
        """Approving decisions so far."""
        return [d for d in self.decisions if d.confirmed]

    @property
    def awaiting(self) -> bool:
        """Whether the call waits for a decision."""
        return self.state is CallState.AWAITING_CONFIRMATION

    def view(self) -> ToolCallView:
        """The call in the wire format."""
        last = self.decisions[-1] if self.decisions else None
        confirmed: bool | None = None
        if self.policy is not None and self.state.is_outcome:
            confirmed = self.state in (
                CallState.APPROVED,
                CallState.EXECUTING,
                CallState.EXECUTED,
                CallState.FAILED,
            )
        return ToolCallView(
            tool_call_id=self.tool_call_id,
            tool_name=self.tool_name,
            tool_args=self.tool_args,
            requires_confirmation=self.policy is not None,
            confirmed=confirmed,
            confirmation_note=last.note if last else None,
            result=self.result,
            tool_call_error=(
                self.state in (CallState.FAILED, CallState.INVALID)
                if self.state.is_outcome
                else None
            ),
            state=self.state,
            turn=self.turn,
            args_digest=self.args_digest,
            expires_at=self.expires_at,
            approvals_required=self.policy.approvals_required if self.policy else 0,
            approver_roles=self.policy.approver_roles if self.policy else [],
            allow_edit=self.policy.allow_edit if self.policy else False,
            decisions=self.decisions,
            result_truncated=self.result_truncated,
        )


class RunState(BaseModel):
    """Everything the workflow knows about a run; carried across continue-as-new."""

    status: RunStatus = RunStatus.RUNNING
    content: str | None = None
    error: str | None = None
    calls: list[CallRecord] = Field(default_factory=list)
    messages: list[ChatMessage] = Field(default_factory=list)
    audit: list[AuditEvent] = Field(default_factory=list)
    turns: int = 0
    pause_count: int = 0
    settle_seq: int = 0
    model: str | None = None
    demo_model: bool = False
    usage: Usage = Field(default_factory=Usage)
    webhooks_sent: int = 0
    # Refusals counted, not recorded one by one, since the last summary.
    refusal_repeats: dict[str, int] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime

    @property
    def pending(self) -> list[CallRecord]:
        """Calls waiting for a decision, in the order they were made."""
        return [c for c in self.calls if c.awaiting]


class RunInput(BaseModel):
    """Input of ``AgentRunWorkflow``."""

    run_id: str
    agent_id: str
    message: str
    user_id: str | None = None
    session_id: str
    requester: Principal
    context: list[ChatMessage] = Field(default_factory=list)
    options: RunOptions = Field(default_factory=RunOptions)
    carried: RunState | None = None
    #: Principal ids whose ``decide_signal`` (Temporal CLI or UI) is accepted,
    #: fixed at the start so that a replay decides each signal as it was decided.
    operator_ids: list[str] = Field(default_factory=list)


class RefusedAttempt(BaseModel):
    """A refused decision, for the audit trail: a bounded summary (:mod:`countersign.limits`)."""

    principal: Principal
    source: DecisionSource = DecisionSource.API
    tool_call_ids: list[Annotated[str, Field(max_length=limits.REFUSAL_ID_CHARS)]] = Field(
        max_length=limits.REFUSAL_IDS_KEPT
    )
    tool_call_count: int = 0
    code: Id
    reason: str = Field(max_length=limits.REFUSAL_REASON_CHARS)

    _summarise = model_validator(mode="before")(limits.summarise_refusal)


class WebhookDelivery(BaseModel):
    """Input of the ``deliver_webhook`` activity: one event for every receiver.

    ``delivery_id`` is stable across retries, so receivers can drop duplicates.
    Receiver URLs and the signing secret stay in the worker's settings and never
    enter workflow history.
    """

    delivery_id: str
    event: WebhookEvent
    run_id: str
    agent_id: str
    occurred_at: datetime
    data: JsonObject = Field(default_factory=dict)


class RunView(BaseModel):
    """The whole run as the ``state`` query returns it and the API serves it."""

    run_id: str
    agent_id: str
    session_id: str
    user_id: str | None = None
    status: RunStatus
    content: str | None = None
    message: str
    created_at: datetime
    updated_at: datetime
    tools: list[ToolCallView] = Field(default_factory=list)
    messages: list[ChatMessage] = Field(default_factory=list)
    turns: int = 0
    pause_count: int = 0
    settle_seq: int = 0
    error: str | None = None
    model: str | None = None
    demo_model: bool = False
    usage: Usage = Field(default_factory=Usage)
    requester: Principal

    @property
    def pending(self) -> list[ToolCallView]:
        """Calls waiting for a decision."""
        return [t for t in self.tools if t.awaiting]

    @classmethod
    def of(cls, run: RunInput, state: RunState) -> RunView:
        """The run from its input and its state: what the workflow's query returns.

        A run that no worker has taken yet is ``RunView.of(run, RunState(...))``
        with a fresh state.
        """
        return cls(
            run_id=run.run_id,
            agent_id=run.agent_id,
            session_id=run.session_id,
            user_id=run.user_id,
            message=run.message,
            requester=run.requester,
            status=state.status,
            content=state.content,
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
        )


class DecideResult(BaseModel):
    """What the ``decide`` update returns: the run after it settled again."""

    applied: list[str]
    run: RunView


# The codes are defined in countersign.codes and exported here beside the
# messages that carry them.
__all__ = [
    "AUDIT_QUERY",
    "DECIDE_SIGNAL",
    "DECIDE_UPDATE",
    "DELIVER_WEBHOOK_ACTIVITY",
    "EXECUTE_TOOL_ACTIVITY",
    "MODEL_TURN_ACTIVITY",
    "RECORD_REFUSAL_SIGNAL",
    "RUN_WORKFLOW",
    "STATE_QUERY",
    "WAIT_SETTLED_UPDATE",
    "AuditEvent",
    "AuditKind",
    "CallRecord",
    "CallState",
    "ChatMessage",
    "ConfirmationPolicy",
    "DecideRequest",
    "DecideResult",
    "Decision",
    "DecisionInput",
    "DecisionScope",
    "DecisionSource",
    "ErrorCode",
    "JsonObject",
    "ModelToolCall",
    "ModelTurn",
    "ModelTurnInput",
    "Principal",
    "ProposedCall",
    "RefusedAttempt",
    "RunInput",
    "RunOptions",
    "RunState",
    "RunStatus",
    "RunView",
    "TimeoutAction",
    "ToolCallView",
    "ToolInvocation",
    "ToolResult",
    "Usage",
    "WebhookDelivery",
    "WebhookEvent",
]
