"""A new run's workflow input, id and search attributes, from the settings."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.common import SearchAttributePair, TypedSearchAttributes

from countersign import search_attributes as sa
from countersign.models import ChatMessage, Principal, RunInput, RunOptions, RunStatus
from countersign.settings import Settings

WORKFLOW_ID_PREFIX = "countersign-run-"


def workflow_id(run_id: str) -> str:
    """The workflow id of a run (one run, one workflow execution)."""
    return f"{WORKFLOW_ID_PREFIX}{run_id}"


def run_id_of(workflow_id: str) -> str:
    """The run id behind a workflow id."""
    return workflow_id.removeprefix(WORKFLOW_ID_PREFIX)


def new_run_id() -> str:
    """A fresh run id."""
    return uuid.uuid4().hex


def run_options(settings: Settings) -> RunOptions:
    """The per-run options that the settings give."""
    return RunOptions(
        max_turns=settings.max_turns,
        default_confirmation_ttl=settings.confirmation_ttl,
        tool_output_limit=settings.tool_output_limit,
        llm_timeout=settings.llm_timeout,
        llm_max_attempts=settings.llm_max_attempts,
        llm_retry_initial_interval=settings.llm_retry_initial_interval,
        llm_heartbeat_timeout=settings.llm_heartbeat_timeout,
        tool_timeout=settings.tool_timeout,
        tool_heartbeat_timeout=settings.tool_heartbeat_timeout,
        webhooks=bool(settings.webhook_urls),
        webhook_retry_for=settings.webhook_retry_for,
    )


def build_run_input(
    settings: Settings,
    *,
    agent_id: str,
    message: str,
    requester: Principal,
    session_id: str | None = None,
    user_id: str | None = None,
    context: list[ChatMessage] | None = None,
    run_id: str | None = None,
) -> RunInput:
    """The workflow input for a new run."""
    return RunInput(
        run_id=run_id or new_run_id(),
        agent_id=agent_id,
        message=message,
        user_id=user_id,
        session_id=session_id or uuid.uuid4().hex,
        requester=requester,
        context=context or [],
        options=run_options(settings),
        operator_ids=list(settings.operator_ids),
    )


def search_attributes_of(run: RunInput) -> TypedSearchAttributes:
    """The search attributes a new run starts with."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(sa.AGENT_ID, run.agent_id),
        SearchAttributePair(sa.SESSION_ID, run.session_id),
        SearchAttributePair(sa.STATUS, RunStatus.RUNNING.value),
        SearchAttributePair(sa.PENDING_APPROVALS, 0),
    ]
    if run.user_id:
        pairs.append(SearchAttributePair(sa.USER_ID, run.user_id))
    return TypedSearchAttributes(pairs)
