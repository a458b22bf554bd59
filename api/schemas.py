"""The wire format of the HTTP API: what comes in and what goes out.

Request and response types are different families (``RunCreate`` comes in,
``RunPublic`` goes out). Responses are built from the workflow's typed views
(:class:`~countersign.models.RunView`, :class:`~countersign.models.ToolCallView`)
so each field has one definition; the seed framework's field names are kept and
ours are added next to them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictBool

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

SEED_MESSAGE = "Delete 50 old records from the users table"
EXAMPLE_RUN_ID = "6f1c2b9e0a7d4c4f8e3b5a2d1c0f9e8d"
EXAMPLE_CALL_ID = "fc_08fcec4a7403d0170069800cf3f76081968afd06038b259278"

# The seed's continue request (api.http, step 2), as JSON.
EXAMPLE_SEED_CONTINUE: dict[str, Any] = {
    "tools": [
        {
            "tool_call_id": EXAMPLE_CALL_ID,
            "tool_name": "delete_records",
            "tool_args": {"table_name": "users", "count": 50},
            "confirmed": True,
        }
    ],
    "session_id": "test_session",
    "user_id": "test_user",
    "stream": False,
}
EXAMPLE_DIGEST = "9c4f0e3b5f1d6a2e8b7c0d9e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c"
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

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"detail": "agent 'nope' does not exist", "code": "unknown_agent"}]
        }
    )


# ---------------------------------------------------------------- requests


class RunCreate(BaseModel):
    """``POST /agents/{agent_id}/runs``, form-encoded as in the seed or JSON."""

    message: str = Field(min_length=1, description="What the user asks the agent.")
    user_id: str | None = Field(None, description="The end user (dev mode: the principal).")
    session_id: str | None = Field(
        None, description="Conversation to continue; a new one is generated when absent."
    )
    stream: bool = Field(False, description="Answer with Server-Sent Events.")

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "message": SEED_MESSAGE,
                    "user_id": "test_user",
                    "session_id": "test_session",
                    "stream": False,
                }
            ]
        },
    )


class ContinueToolEntry(BaseModel):
    """One decision in ``tools``: the seed's short form or the whole echoed tool object.

    Fields the run body carries but a decision does not need (``state``,
    ``result``...) are ignored.
    """

    tool_call_id: str = Field(min_length=1)
    confirmed: StrictBool = Field(description="true approves, false rejects; required.")
    tool_name: str | None = Field(None, description="Must match the pending call.")
    tool_args: JsonObject | None = Field(
        None, description="Must match the pending call unless the tool allows edits."
    )
    args_digest: str | None = Field(None, description="Optional echo of the call's digest.")
    note: str | None = Field(
        None,
        max_length=2000,
        validation_alias=AliasChoices("note", "confirmation_note"),
        description="Why; shown in the audit trail (`confirmation_note` is read too).",
    )

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "tool_call_id": EXAMPLE_CALL_ID,
                    "tool_name": "delete_records",
                    "tool_args": {"table_name": "users", "count": 50},
                    "confirmed": True,
                }
            ]
        },
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
        json_schema_extra={"examples": [EXAMPLE_SEED_CONTINUE]},
    )


class ApprovalDecision(BaseModel):
    """``POST /approvals/{approval_id}/approve`` or ``/reject``; every field optional."""

    note: str | None = Field(None, max_length=2000, description="Why; shown in the audit trail.")
    tool_args: JsonObject | None = Field(
        None, description="Edited arguments (approve only, tools that allow edits)."
    )
    args_digest: str | None = Field(None, description="Digest of the arguments you were shown.")
    user_id: str | None = Field(None, description="Dev mode only: who decides.")

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"note": "checked with the data owner", "args_digest": EXAMPLE_DIGEST}]
        },
    )


class DecisionTokenCreate(BaseModel):
    """``POST /approvals/{approval_id}/tokens``: a signed link for one decision."""

    confirmed: StrictBool = Field(description="true for the approve link, false for reject.")
    ttl_seconds: float | None = Field(
        None, gt=0, description="A lifetime shorter than the call's own deadline."
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
    """A decision recorded on a call."""

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
        return cls(
            principal_id=decision.principal.id,
            roles=list(decision.principal.roles),
            confirmed=decision.confirmed,
            note=decision.note,
            source=decision.source,
            decided_at=decision.decided_at,
            edited_args=decision.edited_args,
        )


class ToolPublic(BaseModel):
    """One tool call of a run: the seed's fields, then ours."""

    tool_call_id: str
    tool_name: str
    tool_args: JsonObject
    requires_confirmation: bool
    confirmed: bool | None = None
    confirmation_note: str | None = None
    result: str | None = None
    tool_call_error: bool | None = None
    state: CallState
    args_digest: str
    expires_at: datetime | None = None
    approvals_required: int = 0
    approver_roles: list[str] = Field(default_factory=list)
    allow_edit: bool = False
    decisions: list[DecisionPublic] = Field(default_factory=list)
    approval_id: str | None = Field(None, description="Id in the approvals API (gated calls).")
    turn: int
    result_truncated: bool = False

    @classmethod
    def of(cls, run_id: str, call: ToolCallView) -> ToolPublic:
        """From the workflow's view of the call."""
        return cls(
            **call.model_dump(exclude={"decisions"}),
            decisions=[DecisionPublic.of(d) for d in call.decisions],
            approval_id=approval_id(run_id, call.tool_call_id)
            if call.requires_confirmation
            else None,
        )


_EXAMPLE_TOOL: dict[str, Any] = {
    "tool_call_id": EXAMPLE_CALL_ID,
    "tool_name": "delete_records",
    "tool_args": {"table_name": "users", "count": 50},
    "requires_confirmation": True,
    "confirmed": None,
    "confirmation_note": None,
    "result": None,
    "tool_call_error": None,
    "state": "AWAITING_CONFIRMATION",
    "args_digest": EXAMPLE_DIGEST,
    "expires_at": "2026-01-02T10:00:00Z",
    "approvals_required": 1,
    "approver_roles": [],
    "allow_edit": False,
    "decisions": [],
    "approval_id": f"{EXAMPLE_RUN_ID}:{EXAMPLE_CALL_ID}",
    "turn": 1,
    "result_truncated": False,
}

EXAMPLE_PAUSED_RUN: dict[str, Any] = {
    "run_id": EXAMPLE_RUN_ID,
    "agent_id": "data_manager",
    "session_id": "test_session",
    "user_id": "test_user",
    "status": "PAUSED",
    "content": None,
    "message": SEED_MESSAGE,
    "created_at": "2026-01-01T10:00:00Z",
    "updated_at": "2026-01-01T10:00:01Z",
    "tools": [_EXAMPLE_TOOL],
    "error": None,
    "model": "gpt-5.2",
    "demo_model": False,
    "usage": {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150},
    "turns": 1,
    "requester": "test_user",
}

EXAMPLE_COMPLETED_RUN: dict[str, Any] = {
    **EXAMPLE_PAUSED_RUN,
    "status": "COMPLETED",
    "content": "Deleted 50 records from users.",
    "tools": [
        {
            **_EXAMPLE_TOOL,
            "confirmed": True,
            "result": "Deleted 50 records from users",
            "tool_call_error": False,
            "state": "EXECUTED",
            "decisions": [
                {
                    "principal_id": "test_user",
                    "roles": ["approver"],
                    "confirmed": True,
                    "note": None,
                    "source": "api",
                    "decided_at": "2026-01-01T10:01:00Z",
                    "edited_args": None,
                }
            ],
        }
    ],
    "turns": 2,
}


class RunPublic(BaseModel):
    """A run as the API returns it (the seed's run body plus our additions)."""

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
        json_schema_extra={"examples": [EXAMPLE_PAUSED_RUN, EXAMPLE_COMPLETED_RUN]}
    )

    @classmethod
    def of(cls, view: RunView) -> RunPublic:
        """From the workflow's view of the run."""
        return cls(
            run_id=view.run_id,
            agent_id=view.agent_id,
            session_id=view.session_id,
            user_id=view.user_id,
            status=view.status,
            content=view.content,
            message=view.message,
            created_at=view.created_at,
            updated_at=view.updated_at,
            tools=[ToolPublic.of(view.run_id, t) for t in view.tools],
            error=view.error,
            model=view.model,
            demo_model=view.demo_model,
            usage=view.usage,
            turns=view.turns,
            requester=view.requester.id,
        )


class RunSummary(BaseModel):
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

    runs: list[RunSummary]
    next_page_token: str | None = Field(None, description="Pass as `page_token` for more.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "runs": [
                        {
                            "run_id": EXAMPLE_RUN_ID,
                            "agent_id": "data_manager",
                            "session_id": "test_session",
                            "user_id": "test_user",
                            "status": "PAUSED",
                            "pending_approvals": 1,
                            "pending_tools": ["delete_records"],
                            "started_at": "2026-01-01T10:00:00Z",
                            "closed_at": None,
                        }
                    ],
                    "next_page_token": None,
                }
            ]
        }
    )


class Confirmation(StrEnum):
    """When a tool's calls need a person."""

    ALWAYS = "always"
    CONDITIONAL = "conditional"
    NEVER = "never"


class AgentToolPublic(BaseModel):
    """A tool an agent may call, with its schema and confirmation policy."""

    name: str
    description: str
    parameters: dict[str, Any] = Field(description="JSON schema of the arguments.")
    requires_confirmation: Confirmation
    approver_roles: list[str] = Field(default_factory=list)
    approvals_required: int = 1
    allow_self_approval: bool
    confirmation_ttl_seconds: float = Field(description="Time to decide before the call is denied.")
    on_timeout: Literal["deny", "cancel_run"]
    allow_edit: bool


_EXAMPLE_AGENT: dict[str, Any] = {
    "id": "data_manager",
    "name": "Data Manager",
    "description": "Deletes records and sends notifications, each after a person confirms it.",
    "instructions": ["You help users manage data operations"],
    "model": None,
    "markdown": True,
    "tools": [
        {
            "name": "delete_records",
            "description": "Delete records from a database table.",
            "parameters": {
                "type": "object",
                "properties": {"table_name": {"type": "string"}, "count": {"type": "integer"}},
                "required": ["table_name", "count"],
                "additionalProperties": False,
            },
            "requires_confirmation": "always",
            "approver_roles": [],
            "approvals_required": 1,
            "allow_self_approval": True,
            "confirmation_ttl_seconds": 86400.0,
            "on_timeout": "deny",
            "allow_edit": False,
        }
    ],
}


class AgentPublic(BaseModel):
    """An agent the API serves."""

    id: str
    name: str
    description: str
    instructions: list[str]
    model: str | None = Field(None, description="The agent's model; the server default if null.")
    markdown: bool
    tools: list[AgentToolPublic]

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_AGENT]})


class ApprovalPublic(BaseModel):
    """One gated call as the approvals inbox shows it."""

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

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "approval_id": f"{EXAMPLE_RUN_ID}:{EXAMPLE_CALL_ID}",
                    "run_id": EXAMPLE_RUN_ID,
                    "agent_id": "data_manager",
                    "session_id": "test_session",
                    "user_id": "test_user",
                    "requester": "test_user",
                    "message": SEED_MESSAGE,
                    "run_status": "PAUSED",
                    "tool_call_id": EXAMPLE_CALL_ID,
                    "tool_name": "delete_records",
                    "tool_args": {"table_name": "users", "count": 50},
                    "args_digest": EXAMPLE_DIGEST,
                    "state": "AWAITING_CONFIRMATION",
                    "expires_at": "2026-01-02T10:00:00Z",
                    "approvals_required": 1,
                    "approvals": 0,
                    "approver_roles": [],
                    "allow_edit": False,
                    "decisions": [],
                }
            ]
        }
    )

    @classmethod
    def of(cls, view: RunView, call: ToolCallView) -> ApprovalPublic:
        """One call of a run, for the inbox."""
        return cls(
            approval_id=approval_id(view.run_id, call.tool_call_id),
            run_id=view.run_id,
            agent_id=view.agent_id,
            session_id=view.session_id,
            user_id=view.user_id,
            requester=view.requester.id,
            message=view.message,
            run_status=view.status,
            tool_call_id=call.tool_call_id,
            tool_name=call.tool_name,
            tool_args=call.tool_args,
            args_digest=call.args_digest,
            state=call.state,
            expires_at=call.expires_at,
            approvals_required=call.approvals_required,
            approvals=sum(1 for d in call.decisions if d.confirmed),
            approver_roles=call.approver_roles,
            allow_edit=call.allow_edit,
            decisions=[DecisionPublic.of(d) for d in call.decisions],
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

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "run_id": EXAMPLE_RUN_ID,
                    "events": [
                        {
                            "seq": 0,
                            "at": "2026-01-01T10:00:00Z",
                            "kind": "run.started",
                            "run_id": EXAMPLE_RUN_ID,
                            "tool_call_id": None,
                            "principal": {"id": "test_user", "roles": ["requester"]},
                            "source": None,
                            "detail": SEED_MESSAGE,
                            "data": {},
                            "prev_hash": "0" * 64,
                            "hash": EXAMPLE_DIGEST,
                        }
                    ],
                    "chain_intact": True,
                    "first_broken_link": None,
                }
            ]
        }
    )


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
