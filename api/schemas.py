"""The wire format of the HTTP API: what comes in and what goes out.

Request and response types are different families (``RunCreate`` comes in,
``RunPublic`` goes out). Responses derive from the workflow's typed views
(:class:`~countersign.models.RunView`, :class:`~countersign.models.ToolCallView`,
a tool's :class:`~countersign.models.ConfirmationPolicy`), so each field has one
definition: the AgentOS wire format's field names come first and ours are
added next to them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictBool

from api.examples import (
    EXAMPLE_APPROVAL,
    EXAMPLE_AUDIT_TRAIL,
    EXAMPLE_COMPLETED_RUN,
    EXAMPLE_CONTINUE,
    EXAMPLE_CREATE,
    EXAMPLE_DIGEST,
    EXAMPLE_ERROR,
    EXAMPLE_PAUSED_RUN,
    EXAMPLE_RUN_LIST,
)
from countersign.audit_export import AuditHead
from countersign.limits import MAX_ID_LENGTH
from countersign.models import (
    AuditEvent,
    CallState,
    Decision,
    DecisionSource,
    JsonObject,
    RunStatus,
    RunView,
    ToolCallView,
    Usage,
)

APPROVAL_ID_SEPARATOR = ":"


def approval_id(run_id: str, tool_call_id: str) -> str:
    """The id of one gated call in the approvals API: ``{run_id}:{tool_call_id}``.

    Run ids never contain ``:``, so the id splits at its first colon. A
    ``tool_call_id`` containing ``/`` must be percent-encoded in a URL.
    """
    return f"{run_id}{APPROVAL_ID_SEPARATOR}{tool_call_id}"


def split_approval_id(value: str) -> tuple[str, str] | None:
    """``(run_id, tool_call_id)`` of an approval id, or ``None`` when malformed."""
    run_id, sep, call_id = value.partition(APPROVAL_ID_SEPARATOR)
    if not sep or not run_id or not call_id:
        return None
    return run_id, call_id


# ------------------------------------------------------------------ errors


class ErrorBody(BaseModel):
    """Every error: a sentence for people and a stable code for programs."""

    detail: str = Field(description="What went wrong and, where it helps, where.")
    code: str = Field(description="Stable machine-readable reason, e.g. `unknown_run`.")

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_ERROR]})


# ---------------------------------------------------------------- requests


class RunCreate(BaseModel):
    """``POST /agents/{agent_id}/runs``, form-encoded as in the AgentOS wire format, or JSON."""

    message: str = Field(min_length=1, description="What the user asks the agent.")
    user_id: str | None = Field(None, description="The end user (dev mode: the principal).")
    session_id: str | None = Field(
        None, description="Conversation to continue; a new one is generated when absent."
    )
    stream: bool = Field(False, description="Answer with Server-Sent Events.")

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [EXAMPLE_CREATE]},
    )


class ContinueToolEntry(BaseModel):
    """One decision in ``tools``: the AgentOS short form or the whole echoed tool object.

    Fields the run body carries but a decision does not need (``state``,
    ``result``...) are ignored.
    """

    # Ids and names are capped before anything reaches Temporal (422).
    tool_call_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    confirmed: StrictBool = Field(description="true approves, false rejects; required.")
    tool_name: str | None = Field(
        None, max_length=MAX_ID_LENGTH, description="Must match the pending call."
    )
    tool_args: JsonObject | None = Field(
        None, description="Must match the pending call unless the tool allows edits."
    )
    args_digest: str | None = Field(
        None, max_length=MAX_ID_LENGTH, description="Optional echo of the call's digest."
    )
    note: str | None = Field(
        None,
        max_length=2000,
        validation_alias=AliasChoices("note", "confirmation_note"),
        description="Why; shown in the audit trail (`confirmation_note` is read too).",
    )

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [EXAMPLE_CONTINUE["tools"][0]]},
    )


class RunContinue(BaseModel):
    """``POST /agents/{agent_id}/runs/{run_id}/continue``.

    ``tools`` is a JSON array: a string in a form field, or a string or an
    array in a JSON body.
    """

    tools: list[ContinueToolEntry]
    session_id: str | None = Field(None, description="When given, must be the run's session.")
    user_id: str | None = None
    stream: bool = False

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [EXAMPLE_CONTINUE]},
    )


class ApprovalDecision(BaseModel):
    """``POST /approvals/{approval_id}/approve`` or ``/reject``; every field optional."""

    note: str | None = Field(None, max_length=2000, description="Why; shown in the audit trail.")
    tool_args: JsonObject | None = Field(
        None, description="Edited arguments (approve only, tools that allow edits)."
    )
    args_digest: str | None = Field(
        None, max_length=MAX_ID_LENGTH, description="Digest of the arguments you were shown."
    )
    user_id: str | None = Field(
        None, max_length=MAX_ID_LENGTH, description="Dev mode only: who decides."
    )

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"note": "checked with the data owner", "args_digest": EXAMPLE_DIGEST}]
        },
    )


class DecisionTokenCreate(BaseModel):
    """``POST /approvals/{approval_id}/tokens``: a signed link for one decision."""

    confirmed: StrictBool = Field(description="true for the approve link, false for reject.")
    # Bounded so that now + ttl stays a date: a huge value was a 500 (OverflowError).
    ttl_seconds: float | None = Field(
        None,
        gt=0,
        le=366 * 86400,
        description="A lifetime shorter than the call's own deadline (at most 366 days).",
    )
    approver_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="Admins only: whom the link decides as (default: yourself).",
    )
    approver_roles: list[str] | None = Field(
        None, max_length=32, description="Admins only, with approver_id: that approver's roles."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"confirmed": True, "ttl_seconds": 3600}]},
    )


class DecisionTokenRedeem(BaseModel):
    """``POST /decision-tokens``: decide with a signed link, no other credentials."""

    token: str = Field(min_length=1, max_length=4096, description="From the link.")
    note: str | None = Field(None, max_length=2000, description="Why; shown in the audit trail.")

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"token": "v1.eyJjIjoi....Zm9v", "note": "ok by mail"}]},
    )


# --------------------------------------------------------------- responses


class DecisionPublic(BaseModel):
    """A decision recorded on a call, its principal flattened to id and roles."""

    principal_id: str
    roles: list[str]
    confirmed: bool
    note: str | None = None
    source: DecisionSource
    decided_at: datetime
    edited_args: JsonObject | None = None

    @classmethod
    def of(cls, decision: Decision) -> DecisionPublic:
        """From the workflow's record."""
        return cls.model_validate(
            {
                **decision.model_dump(exclude={"principal"}),
                "principal_id": decision.principal.id,
                "roles": list(decision.principal.roles),
            }
        )


class ToolPublic(ToolCallView):
    """One tool call of a run: the workflow's view, decisions flattened, its approval id."""

    # The view's decisions with each principal flattened to id and roles.
    decisions: list[DecisionPublic] = Field(default_factory=list)  # type: ignore[assignment]
    approval_id: str | None = Field(None, description="Id in the approvals API (gated calls).")

    @classmethod
    def of(cls, run_id: str, call: ToolCallView) -> ToolPublic:
        """From the workflow's view of the call."""
        return cls.model_validate(
            {
                **call.model_dump(exclude={"decisions"}),
                "decisions": [DecisionPublic.of(d) for d in call.decisions],
                "approval_id": approval_id(run_id, call.tool_call_id)
                if call.requires_confirmation
                else None,
            }
        )


class RunPublic(BaseModel):
    """A run as the API returns it: the AgentOS run body plus our additions.

    The public part of :class:`~countersign.models.RunView`: the conversation
    and the workflow's counters stay inside, the requester is its id.
    """

    run_id: str
    agent_id: str
    session_id: str
    user_id: str | None = None
    status: RunStatus
    content: str | None = None
    message: str
    created_at: datetime
    updated_at: datetime
    tools: list[ToolPublic] = Field(default_factory=list)
    error: str | None = None
    model: str | None = None
    demo_model: bool = False
    usage: Usage = Field(default_factory=Usage)
    turns: int = 0
    requester: str = Field(description="Principal id of whoever started the run.")

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [EXAMPLE_PAUSED_RUN, EXAMPLE_COMPLETED_RUN]},
    )

    @classmethod
    def of(cls, view: RunView) -> RunPublic:
        """From the workflow's view of the run."""
        return cls.model_validate(
            {
                **view.model_dump(exclude={"tools", "requester"}),
                "tools": [ToolPublic.of(view.run_id, t) for t in view.tools],
                "requester": view.requester.id,
            }
        )


class RunListItem(BaseModel):
    """A run as visibility lists it (no query to the workflow)."""

    run_id: str
    agent_id: str
    session_id: str | None = None
    user_id: str | None = None
    status: RunStatus | None = None
    pending_approvals: int = 0
    pending_tools: list[str] = Field(default_factory=list)
    started_at: datetime
    closed_at: datetime | None = None


class RunList(BaseModel):
    """One page of runs, newest activity first."""

    runs: list[RunListItem]
    next_page_token: str | None = Field(None, description="Pass as `page_token` for more.")

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_RUN_LIST]})


class ApprovalPublic(BaseModel):
    """One gated call as the approvals inbox shows it: the call and its run's context."""

    approval_id: str
    run_id: str
    agent_id: str
    session_id: str
    user_id: str | None = None
    requester: str
    message: str = Field(description="The user's request that led to this call.")
    run_status: RunStatus
    tool_call_id: str
    tool_name: str
    tool_args: JsonObject
    args_digest: str
    state: CallState
    expires_at: datetime | None = None
    approvals_required: int
    approvals: int = Field(description="Approvals recorded so far.")
    approver_roles: list[str]
    allow_edit: bool
    decisions: list[DecisionPublic]

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [EXAMPLE_APPROVAL]})

    @classmethod
    def of(cls, view: RunView, call: ToolCallView) -> ApprovalPublic:
        """One call of a run, for the inbox."""
        tool = ToolPublic.of(view.run_id, call)
        return cls.model_validate(
            {
                **tool.model_dump(),
                "run_id": view.run_id,
                "agent_id": view.agent_id,
                "session_id": view.session_id,
                "user_id": view.user_id,
                "requester": view.requester.id,
                "message": view.message,
                "run_status": view.status,
                "approvals": sum(1 for d in call.decisions if d.confirmed),
            }
        )


class DecisionTokenPublic(BaseModel):
    """A signed decision link's token and what it grants (shown once, never stored)."""

    token: str
    approval_id: str
    run_id: str
    tool_call_id: str
    tool_name: str
    args_digest: str
    confirmed: bool
    approver_id: str
    approver_roles: list[str]
    expires_at: datetime


class ApprovalList(BaseModel):
    """One page of the approvals inbox."""

    approvals: list[ApprovalPublic]
    next_page_token: str | None = Field(None, description="Pass as `page_token` for more.")


class AuditTrail(BaseModel):
    """A run's audit trail and whether its hash chain is intact."""

    run_id: str
    events: list[AuditEvent]
    chain_intact: bool
    first_broken_link: int | None = Field(
        None, description="Index of the first changed, removed or moved event."
    )
    head: AuditHead | None = Field(
        None, description="Where the trail ends, signed by the API (COUNTERSIGN_AUDIT_HEAD_KEY)."
    )

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_AUDIT_TRAIL]})


class HealthPublic(BaseModel):
    """``GET /health``."""

    status: Literal["ok"] = "ok"
    temporal: Literal["reachable", "unreachable"]
    auth: Literal["disabled", "enabled"]
    namespace: str
    task_queue: str
    agents: int = Field(description="How many agents the API serves.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "temporal": "reachable",
                    "auth": "enabled",
                    "namespace": "default",
                    "task_queue": "countersign",
                    "agents": 1,
                }
            ]
        }
    )


class ReadyPublic(BaseModel):
    """``GET /ready``: this replica can take runs now (otherwise 503 with the failed check)."""

    status: Literal["ready"] = "ready"
    namespace: str
    task_queue: str
    workers: int = Field(description="Workers seen polling the task queue in the last 90 s.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "namespace": "default",
                    "task_queue": "countersign",
                    "workers": 2,
                }
            ]
        }
    )
