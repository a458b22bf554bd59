"""``/approvals``: the inbox of calls waiting for a person, and deciding one.

An ``approval_id`` is ``{run_id}:{tool_call_id}`` (run ids never contain a
colon); a ``tool_call_id`` containing ``/`` must be percent-encoded.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import Response
from temporalio.client import Client

from api.decisions import DecisionAttempt
from api.deps import Approver, ClientDep, Reader, RegistryDep, SettingsDep, WaitsDep
from api.errors import UNKNOWN_APPROVAL, ApiError, responses
from api.forms import ApprovalDecisionBody, request_body
from api.routes.runs import _RUN_RESPONSES, run_response
from api.schemas import (
    EXAMPLE_CALL_ID,
    EXAMPLE_DIGEST,
    EXAMPLE_RUN_ID,
    ApprovalDecision,
    ApprovalList,
    ApprovalPublic,
    ContinueToolEntry,
    RunPublic,
    split_approval_id,
)
from api.service import get_view, list_page, open_views, pending_approvals_query
from countersign.models import Principal, RunView, ToolCallView
from countersign.runs import decide

router = APIRouter(prefix="/approvals", tags=["approvals"])

ApprovalId = Annotated[
    str,
    Path(
        description="`{run_id}:{tool_call_id}`",
        openapi_examples={
            "seed": {"summary": "a pending call", "value": f"{EXAMPLE_RUN_ID}:{EXAMPLE_CALL_ID}"}
        },
    ),
]


def _unknown(approval_id: str) -> ApiError:
    return ApiError(
        status.HTTP_404_NOT_FOUND, UNKNOWN_APPROVAL, f"approval {approval_id!r} does not exist"
    )


async def _locate(client: Client, approval_id: str) -> tuple[RunView, str]:
    parts = split_approval_id(approval_id)
    if parts is None:
        raise _unknown(approval_id)
    run_id, call_id = parts
    try:
        return await get_view(client, run_id), call_id
    except ApiError as err:
        if err.status_code == status.HTTP_404_NOT_FOUND:
            raise _unknown(approval_id) from None
        raise


def _gated_call(view: RunView, call_id: str) -> ToolCallView | None:
    return next(
        (t for t in view.tools if t.tool_call_id == call_id and t.requires_confirmation), None
    )


@router.get(
    "",
    summary="The approvals inbox (from visibility)",
    response_model=ApprovalList,
    responses=responses(401, 422, 503),
)
async def list_approvals(
    client: ClientDep,
    _: Reader,
    approval_status: Annotated[
        Literal["pending"],
        Query(alias="status", description="Only `pending` for now."),
    ] = "pending",
    agent_id: Annotated[
        str | None,
        Query(openapi_examples={"seed": {"summary": "seed agent", "value": "data_manager"}}),
    ] = None,
    tool_name: Annotated[
        str | None,
        Query(openapi_examples={"delete": {"summary": "deletions", "value": "delete_records"}}),
    ] = None,
    user_id: Annotated[
        str | None,
        Query(
            description="Only runs of this end user.",
            openapi_examples={"seed": {"summary": "seed user", "value": "test_user"}},
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Runs per page.")] = 20,
    page_token: Annotated[str | None, Query(description="From the previous page.")] = None,
) -> ApprovalList:
    """Calls awaiting a decision, from runs whose CountersignPendingApprovals > 0.

    A page holds the pending calls of up to ``limit`` runs. Visibility lags
    slightly behind the runs themselves.
    """
    del approval_status
    query = pending_approvals_query(agent_id, tool_name, user_id)
    executions, token = await list_page(client, query, limit=limit, page_token=page_token)
    views = await open_views(client, executions)
    approvals = [
        ApprovalPublic.of(view, call)
        for view in views
        for call in view.pending
        if tool_name is None or call.tool_name == tool_name
    ]
    return ApprovalList(approvals=approvals, next_page_token=token)


@router.get(
    "/{approval_id}",
    summary="One approval",
    response_model=ApprovalPublic,
    responses=responses(401, 404, 503),
)
async def read_approval(approval_id: ApprovalId, client: ClientDep, _: Reader) -> ApprovalPublic:
    """A gated call, pending or decided, with its run's context."""
    view, call_id = await _locate(client, approval_id)
    call = _gated_call(view, call_id)
    if call is None:
        raise _unknown(approval_id)
    return ApprovalPublic.of(view, call)


async def _decide(
    approval_id: str,
    confirmed: bool,
    body: ApprovalDecision,
    principal: Principal,
    client: Client,
    registry: RegistryDep,
    settings: SettingsDep,
    waits: WaitsDep,
) -> Response:
    view, call_id = await _locate(client, approval_id)
    entry = ContinueToolEntry(
        tool_call_id=call_id,
        confirmed=confirmed,
        note=body.note,
        tool_args=body.tool_args if confirmed else None,
        args_digest=body.args_digest,
    )
    attempt = DecisionAttempt(client, registry.get(view.agent_id), view, principal, [entry])
    request = await attempt.check(session_id=None, max_decisions=1)
    result = await attempt.send(
        waits.run(decide(attempt.handle, request, wait=settings.wait_budget))
    )
    if result is None:
        return run_response(await get_view(client, view.run_id), settled=False)
    return run_response(result.run)


_DECIDE_RESPONSES = {**_RUN_RESPONSES, **responses(401, 403, 404, 409, 410, 422, 503)}


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
