"""``/approvals``: the inbox of calls waiting for a person, deciding one, and
issuing signed decision links for it.

An ``approval_id`` is ``{run_id}:{tool_call_id}`` (run ids never contain a
colon); a ``tool_call_id`` containing ``/`` must be percent-encoded. Who sees
and decides what is :mod:`api.policy`'s business: a run the caller may not
read is reported as unknown.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import Response
from temporalio.client import Client

from api import auth, policy
from api.decisions import decide_one, nothing_to_decide, token_secret
from api.deps import (
    Approver,
    ClientDep,
    Reader,
    RegistryDep,
    SettingsDep,
    TokenIssuer,
    WaitsDep,
)
from api.errors import ApiError, responses
from api.examples import EXAMPLE_APPROVAL_ID, EXAMPLE_DIGEST
from api.forms import ApprovalDecisionBody, TokenCreateBody, request_body
from api.inbox import pending_approvals
from api.reads import gated_call, locate, unknown_approval
from api.run_responses import RUN_RESPONSES
from api.schemas import (
    ApprovalDecision,
    ApprovalList,
    ApprovalPublic,
    ContinueToolEntry,
    DecisionTokenCreate,
    DecisionTokenPublic,
    RunPublic,
)
from api.shutdown import PendingWaits
from countersign import AgentRegistry
from countersign.limits import MAX_ID_LENGTH
from countersign.models import CallState, DecisionSource, ErrorCode, Principal
from countersign.security import decision_tokens
from countersign.settings import Settings

logger = logging.getLogger("countersign.api")

router = APIRouter(prefix="/approvals", tags=["approvals"])

ApprovalId = Annotated[
    str,
    Path(
        description="`{run_id}:{tool_call_id}`",
        # A run id, the separator and a call id: longer is refused before Temporal is asked.
        max_length=2 * MAX_ID_LENGTH + 1,
        openapi_examples={"example": {"summary": "a pending call", "value": EXAMPLE_APPROVAL_ID}},
    ),
]


@router.get(
    "",
    summary="The approvals inbox (from visibility)",
    response_model=ApprovalList,
    responses=responses(401, 403, 422, 503),
)
async def list_approvals(
    client: ClientDep,
    principal: Reader,
    approval_status: Annotated[
        Literal["pending"],
        Query(alias="status", description="Only `pending` for now."),
    ] = "pending",
    agent_id: Annotated[
        str | None,
        Query(openapi_examples={"example": {"summary": "an agent", "value": "data_manager"}}),
    ] = None,
    tool_name: Annotated[
        str | None,
        Query(openapi_examples={"delete": {"summary": "deletions", "value": "delete_records"}}),
    ] = None,
    user_id: Annotated[
        str | None,
        Query(
            description="Only runs of this end user.",
            openapi_examples={"example": {"summary": "an end user", "value": "test_user"}},
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Runs per page.")] = 20,
    page_token: Annotated[str | None, Query(description="From the previous page.")] = None,
) -> ApprovalList:
    """Calls awaiting a decision, from runs whose CountersignPendingApprovals > 0.

    A page holds the pending calls of up to ``limit`` runs. Visibility lags
    slightly behind the runs themselves. Approvers, viewers and admins see
    every pending call; a requester sees those of its own runs.
    """
    del approval_status
    return await pending_approvals(
        client,
        principal,
        agent_id=agent_id,
        tool_name=tool_name,
        user_id=policy.inbox_scope(principal, user_id),
        limit=limit,
        page_token=page_token,
    )


@router.get(
    "/{approval_id}",
    summary="One approval",
    response_model=ApprovalPublic,
    responses=responses(401, 404, 503),
)
async def read_approval(
    approval_id: ApprovalId, client: ClientDep, principal: Reader
) -> ApprovalPublic:
    """A gated call, pending or decided, with its run's context."""
    view, call_id = await locate(client, approval_id, principal)
    call = gated_call(view, call_id)
    if call is None:
        raise unknown_approval(approval_id)
    return ApprovalPublic.of(view, call)


async def _decide(
    approval: str,
    confirmed: bool,
    body: ApprovalDecision,
    principal: Principal,
    client: Client,
    registry: AgentRegistry,
    settings: Settings,
    waits: PendingWaits,
) -> Response:
    view, call_id = await locate(client, approval, principal)
    call = gated_call(view, call_id)
    if (
        call is not None
        and call.state is CallState.CANCELLED
        and policy.can_decide(principal, view)
    ):
        # Why nothing can be decided, as a decision link says it, rather than
        # "the run is not paused".
        raise nothing_to_decide(call)
    entry = ContinueToolEntry(
        tool_call_id=call_id,
        confirmed=confirmed,
        note=body.note,
        tool_args=body.tool_args if confirmed else None,
        args_digest=body.args_digest,
    )
    return await decide_one(
        view,
        entry,
        principal,
        source=DecisionSource.API,
        client=client,
        registry=registry,
        settings=settings,
        waits=waits,
    )


_DECIDE_RESPONSES = {**RUN_RESPONSES, **responses(401, 403, 404, 409, 410, 422, 503)}


@router.post(
    "/{approval_id}/approve",
    summary="Approve a pending call",
    description="Returns the run once it settles again (or at once while other calls of the "
    "batch are still pending). Optional `note`, `args_digest` (what you were shown) and "
    "`tool_args` (an edit, for tools that allow edits).",
    response_model=RunPublic,
    responses=_DECIDE_RESPONSES,
    openapi_extra=request_body(
        ApprovalDecision,
        {
            "note": {"note": "checked with the data owner", "args_digest": EXAMPLE_DIGEST},
            "edit": {"tool_args": {"table_name": "users", "count": 40}},
        },
    ),
)
async def approve(
    approval_id: ApprovalId,
    body: ApprovalDecisionBody,
    principal: Approver,
    client: ClientDep,
    registry: RegistryDep,
    settings: SettingsDep,
    waits: WaitsDep,
) -> Response:
    """Approve one gated call; the principal comes from the credentials."""
    return await _decide(approval_id, True, body, principal, client, registry, settings, waits)


@router.post(
    "/{approval_id}/reject",
    summary="Reject a pending call",
    description="The model is told `rejected by <principal>: <note>` and the run goes on.",
    response_model=RunPublic,
    responses=_DECIDE_RESPONSES,
    openapi_extra=request_body(ApprovalDecision, {"note": {"note": "not during business hours"}}),
)
async def reject(
    approval_id: ApprovalId,
    body: ApprovalDecisionBody,
    principal: Approver,
    client: ClientDep,
    registry: RegistryDep,
    settings: SettingsDep,
    waits: WaitsDep,
) -> Response:
    """Reject one gated call; the principal comes from the credentials."""
    return await _decide(approval_id, False, body, principal, client, registry, settings, waits)


@router.post(
    "/{approval_id}/tokens",
    summary="Issue a signed decision link for a pending call",
    description="For channels that cannot carry credentials (an e-mail link): the token "
    "decides one call, one way (approve or reject), as the approver it names, for the "
    "arguments shown now, until the call's deadline at the latest. Redeem it with "
    "`POST /decision-tokens`. Approvers issue links for themselves; admins may name another "
    "approver. The token is shown once and stored nowhere.",
    response_model=DecisionTokenPublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 404, 409, 410, 422, 503),
    openapi_extra=request_body(
        DecisionTokenCreate,
        {
            "approve": {"confirmed": True, "ttl_seconds": 3600},
            "reject": {"confirmed": False},
        },
    ),
)
async def issue_token(
    approval_id: ApprovalId,
    body: TokenCreateBody,
    principal: TokenIssuer,
    client: ClientDep,
    settings: SettingsDep,
) -> DecisionTokenPublic:
    """A token deciding one pending call; the caller (or, for admins, who they name) decides."""
    secret = token_secret(settings)
    view, call_id = await locate(client, approval_id, principal)
    call = gated_call(view, call_id)
    if call is None:
        raise unknown_approval(approval_id)
    approver = _token_approver(principal, body, settings)
    if not policy.can_decide(approver, view):
        raise policy.forbidden(f"{approver.id} may not decide calls of run {view.run_id}")
    policy.check_mint(principal, call, approver.roles)
    if not call.awaiting or call.expires_at is None:
        raise nothing_to_decide(call)
    try:
        token = decision_tokens.issue(
            secret,
            run_id=view.run_id,
            tool_call_id=call_id,
            args_digest=call.args_digest,
            confirmed=body.confirmed,
            approver_id=approver.id,
            approver_roles=approver.roles,
            minted_by=principal.id,
            call_expires_at=call.expires_at,
            ttl=timedelta(seconds=body.ttl_seconds) if body.ttl_seconds else None,
        )
    except ValueError as err:
        raise ApiError.refusal(ErrorCode.EXPIRED, f"tool call {call_id}: {err}") from None
    claims = decision_tokens.verify(token, secret)
    logger.info(
        "%s issued a %s link on %s for %s, expiring %s",
        principal.id,
        "approve" if body.confirmed else "reject",
        approval_id,
        approver.id,
        claims.expires.isoformat(),
    )
    return DecisionTokenPublic(
        token=token,
        approval_id=approval_id,
        run_id=view.run_id,
        tool_call_id=call_id,
        tool_name=call.tool_name,
        args_digest=call.args_digest,
        confirmed=body.confirmed,
        approver_id=approver.id,
        approver_roles=list(approver.roles),
        expires_at=claims.expires,
    )


def _token_approver(
    principal: Principal, body: DecisionTokenCreate, settings: Settings
) -> Principal:
    """Whom a link decides as: the caller, or the approver an admin names.

    A named approver must be a real principal: the caller, or an API-key
    principal (``key:<id>``) with an active key; the link's roles are among
    those it holds now. No link can speak for an invented id or role.
    """
    if body.approver_id is None and body.approver_roles is None:
        return principal
    if not policy.is_admin(principal):
        raise policy.forbidden("only admins may issue links for another approver")
    if body.approver_id is None:
        raise ApiError.invalid("approver_roles: give approver_id too")
    if settings.auth_disabled:
        # Development mode trusts every claimed identity anyway.
        return Principal(id=body.approver_id, roles=tuple(body.approver_roles or ()))
    named = principal if body.approver_id == principal.id else None
    named = named or auth.key_principal(settings, body.approver_id)
    if named is None:
        raise policy.forbidden(
            f"{body.approver_id} is not a known principal: name yourself or an API-key"
            " principal (key:<id>) with an active key"
        )
    if body.approver_roles is None:
        return named
    missing = sorted(set(body.approver_roles) - set(named.roles))
    if missing:
        raise policy.forbidden(f"{named.id} does not hold the roles {', '.join(missing)}")
    return Principal(id=named.id, roles=tuple(body.approver_roles))
