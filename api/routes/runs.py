"""``/agents/{agent_id}/runs``: start, continue, read and list runs (the AgentOS wire format).

Creating and continuing answer once the run settles (paused, completed or
failed), waiting on an update rather than polling; after the wait budget they
answer 202 with the run as it is, and the run goes on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api import policy
from api.decisions import DecisionAttempt, ReadFirstError, decide_unread
from api.deps import AgentDep, Approver, ClientDep, Reader, Requester, SettingsDep, WaitsDep
from api.errors import ApiError, responses
from api.events import RunEvent, StartedEvent, event_stream, run_frames
from api.examples import EXAMPLE_CALL_ID, EXAMPLE_CONTINUE, EXAMPLE_MESSAGE
from api.forms import RunContinueBody, RunCreateBody, request_body
from api.reads import agent_run, started_view, view_or_started
from api.run_responses import RUN_RESPONSES, run_response
from api.schemas import AuditTrail, RunContinue, RunCreate, RunList, RunPublic
from api.sessions import check_session_owner, session_context
from api.visibility import list_item, list_page, visibility_query
from countersign import search_attributes as sa
from countersign.audit_export import AuditHead
from countersign.client import NotAcceptedError, RunClient, build_run_input
from countersign.digest import first_broken_link
from countersign.models import ChatMessage, RunStatus, RunView

logger = logging.getLogger("countersign.api")

router = APIRouter(prefix="/agents/{agent_id}/runs", tags=["runs"])


_STREAM_DOC = (
    " With `stream=true` the answer is Server-Sent Events named as in the AgentOS wire format, "
    "derived from the run's settled state: `RunStarted` (at once) or `RunContinued` (once the "
    "decisions are accepted, so refusals stay HTTP errors), then `ToolCallStarted` and "
    "`ToolCallCompleted` for each call that ran, and last one event that says how it ended: "
    "`RunPaused`, `RunCompleted`, `RunError` or `RunCancelled` whose data is the run body, "
    "`RunInProgress` if the wait budget ran out (the run goes on), or `RunError` with "
    "`{detail, code}` if the API could not follow the run. Events after the first arrive "
    "together when the run settles; each has an `id` and JSON data, and a `: ping` comment "
    "keeps the connection alive meanwhile (`COUNTERSIGN_SSE_PING_INTERVAL`)."
)


@router.post(
    "",
    summary="Start a run",
    description="Form-encoded as in the AgentOS wire format, or JSON. Returns once the run "
    "settles." + _STREAM_DOC,
    response_model=RunPublic,
    responses={**RUN_RESPONSES, **responses(401, 403, 404, 409, 422, 503)},
    openapi_extra=request_body(
        RunCreate,
        {
            "data_manager": {
                "message": EXAMPLE_MESSAGE,
                "user_id": "test_user",
                "session_id": "test_session",
            },
            "streaming": {"message": EXAMPLE_MESSAGE, "stream": True},
        },
    ),
)
async def create_run(
    agent: AgentDep,
    body: RunCreateBody,
    principal: Requester,
    client: ClientDep,
    settings: SettingsDep,
    waits: WaitsDep,
) -> Response:
    """Start a run and answer when it pauses, completes or fails."""
    if len(body.message) > settings.max_message_chars:
        raise ApiError.invalid(f"message: at most {settings.max_message_chars} characters")
    # With authentication the run belongs to the credentials' principal; the
    # body's user_id names someone only in development mode. The owner of the
    # run is the owner of its session.
    owner = body.user_id if settings.auth_disabled and body.user_id else principal.id
    context: list[ChatMessage] = []
    if body.session_id:
        await check_session_owner(client, session_id=body.session_id, owner=owner)
        context = await session_context(
            client,
            agent_id=agent.id,
            session_id=body.session_id,
            owner=owner,
            limit=settings.session_context_limit,
        )
    run = build_run_input(
        settings,
        agent_id=agent.id,
        message=body.message,
        requester=principal,
        # None: the run starts a new session with a server-generated id.
        session_id=body.session_id,
        user_id=owner,
        context=context,
    )
    task_queue = settings.temporal_task_queue
    if body.stream:

        async def settle() -> RunView:
            # Inside the stream, so RunStarted goes out at once and a run that
            # completes without a pause is answered by the update it started with.
            try:
                _, settled = await waits.run(
                    RunClient.start(client, run, task_queue=task_queue, wait=settings.wait_budget)
                )
            except NotAcceptedError:
                return started_view(run)
            return settled or await view_or_started(client, run)

        first = StartedEvent(
            event=RunEvent.RUN_STARTED,
            run_id=run.run_id,
            agent_id=agent.id,
            session_id=run.session_id,
        )
        return event_stream(run_frames(first, None, settle), ping=settings.sse_ping_interval)
    try:
        _, settled = await waits.run(
            RunClient.start(client, run, task_queue=task_queue, wait=settings.wait_budget)
        )
    except NotAcceptedError as err:
        logger.warning("%s", err)
        return run_response(started_view(run), settled=False)
    if settled is None:
        return run_response(await view_or_started(client, run), settled=False)
    return run_response(settled)


@router.post(
    "/{run_id}/continue",
    summary="Decide the pending calls of a paused run",
    description="`tools` is a JSON array of `{tool_call_id, tool_name, tool_args, confirmed, "
    "note?}` (a form field string or a JSON array). Whole tool objects as echoed from the run "
    "body are accepted; `tool_name` and `tool_args` must match the pending call unless the "
    "tool allows edits; `confirmed` must be a boolean. Calls not named stay pending." + _STREAM_DOC,
    response_model=RunPublic,
    responses={**RUN_RESPONSES, **responses(401, 403, 404, 409, 410, 422, 503)},
    openapi_extra=request_body(
        RunContinue,
        {
            "data_manager": EXAMPLE_CONTINUE,
            "reject": {
                "tools": [
                    {"tool_call_id": EXAMPLE_CALL_ID, "confirmed": False, "note": "not today"}
                ]
            },
        },
    ),
)
async def continue_run(
    agent: AgentDep,
    run_id: str,
    body: RunContinueBody,
    principal: Approver,
    client: ClientDep,
    settings: SettingsDep,
    waits: WaitsDep,
) -> Response:
    """Send the decisions and answer when the run settles again."""
    if not body.stream:
        # One update, no read of the run first; a refusal (rare) is redone
        # below, on the path that reads the run and answers as it always has.
        try:
            result = await decide_unread(
                client,
                agent.id,
                run_id,
                principal,
                body.tools,
                session_id=body.session_id,
                settings=settings,
                waits=waits,
            )
        except ReadFirstError:
            pass
        else:
            if result is None:
                return run_response(await RunClient.of(client, run_id).view(), settled=False)
            return run_response(result.run)
    view = policy.check_read(principal, await agent_run(client, agent.id, run_id))
    attempt = DecisionAttempt(client, agent, view, principal, body.tools, settings=settings)
    if refusal := policy.decide_refusal(principal, view):
        await attempt.refuse(refusal)
    request = await attempt.check(
        session_id=body.session_id, max_decisions=settings.max_decisions_per_request
    )
    result = await attempt.send(waits.run(attempt.run.decide(request, wait=settings.wait_budget)))
    after = result.run if result is not None else await attempt.run.view()
    if body.stream:
        # The decisions are in before the stream starts, so a refusal is an HTTP error.
        async def settled() -> RunView:
            return after

        first = StartedEvent(
            event=RunEvent.RUN_CONTINUED,
            run_id=run_id,
            agent_id=agent.id,
            session_id=view.session_id,
            tool_call_ids=[d.tool_call_id for d in request.decisions],
        )
        return event_stream(run_frames(first, view, settled), ping=settings.sse_ping_interval)
    return run_response(after, settled=result is not None)


@router.post(
    "/{run_id}/cancel",
    summary="Cancel a run",
    description="Ends the run CANCELLED through Temporal's cancellation: calls still waiting "
    "for a decision are denied (state `CANCELLED`) and no tool runs after it. Idempotent: "
    "cancelling a run that already ended answers 200 with the run as it is (its status says "
    "how it ended). 202 when the run has not ended within the wait budget (it ends when a "
    "worker takes the cancellation). Who may cancel: whoever may decide the run's calls.",
    response_model=RunPublic,
    responses={
        202: {
            "description": "Cancellation requested; the run has not ended yet.",
            "model": RunPublic,
        },
        **responses(401, 403, 404, 503),
    },
)
async def cancel_run(
    agent: AgentDep,
    run_id: str,
    principal: Approver,
    client: ClientDep,
    settings: SettingsDep,
    waits: WaitsDep,
) -> Response:
    """Cancel the run and answer once it has ended."""
    view = policy.check_read(principal, await agent_run(client, agent.id, run_id))
    if refusal := policy.decide_refusal(principal, view):
        raise refusal
    if view.status.is_final:
        return run_response(view)
    run = RunClient.of(client, run_id)
    await run.cancel()
    try:
        ended = await waits.run(
            asyncio.wait_for(run.final_view(), settings.wait_budget.total_seconds())
        )
    except TimeoutError:
        return run_response(await run.view(), settled=False)
    return run_response(ended)


@router.get(
    "/{run_id}",
    summary="Read a run",
    response_model=RunPublic,
    responses=responses(401, 404, 503),
)
async def read_run(agent: AgentDep, run_id: str, client: ClientDep, principal: Reader) -> RunPublic:
    """The run as it is now (a query while open, its result once closed)."""
    return RunPublic.of(policy.check_read(principal, await agent_run(client, agent.id, run_id)))


@router.get(
    "/{run_id}/audit",
    summary="A run's audit trail",
    response_model=AuditTrail,
    responses=responses(401, 404, 503),
)
async def read_audit(
    agent: AgentDep, run_id: str, client: ClientDep, principal: Reader, settings: SettingsDep
) -> AuditTrail:
    """Every request, decision, refused attempt, expiry and execution, hash-chained.

    With ``COUNTERSIGN_AUDIT_HEAD_KEY`` set, ``head`` signs where the trail
    ends, so an export cannot be cut short or re-hashed unnoticed.
    """
    policy.check_read(principal, await agent_run(client, agent.id, run_id))
    events = await RunClient.of(client, run_id).audit()
    broken = first_broken_link(events)
    key = settings.audit_head_key
    return AuditTrail(
        run_id=run_id,
        events=events,
        chain_intact=broken is None,
        first_broken_link=broken,
        head=AuditHead.sign(run_id, events, key.get_secret_value()) if key else None,
    )


@router.get(
    "",
    summary="List runs (from visibility)",
    response_model=RunList,
    responses=responses(401, 403, 404, 422, 503),
)
async def list_runs(
    agent: AgentDep,
    client: ClientDep,
    principal: Reader,
    session_id: Annotated[
        str | None,
        Query(openapi_examples={"example": {"summary": "a session", "value": "test_session"}}),
    ] = None,
    user_id: Annotated[
        str | None,
        Query(openapi_examples={"example": {"summary": "an end user", "value": "test_user"}}),
    ] = None,
    run_status: Annotated[
        RunStatus | None,
        Query(
            alias="status",
            openapi_examples={"paused": {"summary": "paused runs", "value": "PAUSED"}},
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    page_token: Annotated[str | None, Query(description="From the previous page.")] = None,
) -> RunList:
    """Runs of the agent, filtered on the search attributes; visibility lags slightly.

    Viewers and admins list every run; others list their own (``user_id`` is
    then their principal id, and naming another user is 403).
    """
    user_id = policy.list_scope(principal, user_id)
    query = visibility_query(
        {
            "agent_id": (sa.AGENT_ID.name, agent.id),
            "session_id": (sa.SESSION_ID.name, session_id),
            "user_id": (sa.USER_ID.name, user_id),
            "status": (sa.STATUS.name, run_status.value if run_status else None),
        }
    )
    executions, token = await list_page(client, query, limit=limit, page_token=page_token)
    return RunList(runs=[list_item(e) for e in executions], next_page_token=token)
