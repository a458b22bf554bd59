"""One attempt at deciding calls of a run, from ``/continue`` or the approvals API.

The API checks what only it can check (the session, that the run is paused,
edited arguments against the tool's schema) and signs the request with the
decision-proof key (:mod:`countersign.decision_proof`); the workflow's
``decide`` validator checks the proof and everything else. Either way a
refusal becomes an HTTP error and, best effort, an event in the run's audit
trail, except for a caller who may not decide the run at all, and within a
budget per caller, so refusals cannot grow a run's history without bound. The
principal always comes from the credentials, never from the body.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import NoReturn, TypeVar

from fastapi import status
from fastapi.responses import Response
from temporalio.client import Client

from api import metrics, policy
from api.errors import ApiError
from api.run_responses import run_response
from api.schemas import ContinueToolEntry
from api.shutdown import PendingWaits
from countersign import Agent, AgentRegistry, ToolArgumentsError, access, decision_proof
from countersign.client import (
    DecisionRefusedError,
    NotAcceptedError,
    RunClient,
    RunClosedError,
)
from countersign.digest import args_digest
from countersign.models import (
    CallState,
    DecideRequest,
    DecideResult,
    DecisionInput,
    DecisionScope,
    DecisionSource,
    ErrorCode,
    JsonObject,
    Principal,
    RefusedAttempt,
    RunStatus,
    RunView,
    ToolCallView,
)
from countersign.settings import Settings

T = TypeVar("T")

#: Refusals that say the caller may not decide this run at all: never recorded.
NOT_RECORDED = frozenset(
    {
        ErrorCode.FORBIDDEN,
        ErrorCode.SESSION_MISMATCH,
        ErrorCode.FORBIDDEN_ROLE,
        ErrorCode.UNAUTHORISED_DECISION,
    }
)
#: How long before the wait budget ends a decision stops being valid (see ``sealed``).
DEADLINE_MARGIN = timedelta(seconds=1)
#: Refusals of one principal on one run sent to the workflow per minute, per API process.
REFUSALS_RECORDED_PER_MINUTE = 5


class _RecordBudget:
    """How many refusals per run and principal this process still records this minute.

    Each signal is a history event, so without this a caller refused in a loop
    would grow the run's history toward Temporal's limit. Bounded in memory:
    the oldest keys are forgotten first.
    """

    def __init__(self, per_minute: int, max_keys: int = 10_000) -> None:
        self.per_minute = per_minute
        self.max_keys = max_keys
        self._windows: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()

    def admit(self, key: tuple[str, str]) -> bool:
        now = time.monotonic()
        start, used = self._windows.pop(key, (now, 0))
        if now - start >= 60:
            start, used = now, 0
        self._windows[key] = (start, used + 1)
        while len(self._windows) > self.max_keys:
            self._windows.popitem(last=False)
        return used < self.per_minute


_refusals = _RecordBudget(REFUSALS_RECORDED_PER_MINUTE)


async def refuse(
    run: RunClient,
    principal: Principal,
    entries: list[ContinueToolEntry],
    source: DecisionSource,
    err: ApiError,
    *,
    open_run: bool,
) -> NoReturn:
    """Record a refusal in the run's audit trail (if it may be), then raise it.

    A caller who may not decide the run at all is answered and not
    recorded: otherwise anyone who can read a run could grow its history.
    Repeated refusals by one principal are recorded a few times a minute
    at most (:data:`REFUSALS_RECORDED_PER_MINUTE`), for the same reason.
    """
    metrics.record_refused_decisions(len(entries))
    if open_run and err.code not in NOT_RECORDED and _refusals.admit((run.run_id, principal.id)):
        await run.record_refusal(
            RefusedAttempt(
                principal=principal,
                source=source,
                tool_call_ids=[e.tool_call_id for e in entries],
                code=err.code,
                reason=err.detail,
            )
        )
    raise err


class DecisionAttempt:
    """Decisions on one run by one principal, checked and then sent.

    Args:
        client: The shared Temporal client.
        agent: The run's agent, to validate edited arguments; ``None`` when the
            API no longer serves it (the workflow still refuses edits the tool
            does not allow).
        view: The run as it was read for this request.
        principal: Who decides.
        entries: The decisions as requested.
        source: The channel the decisions came through.
        settings: The API's settings; their ``decision_proof_keys`` sign the
            request (without them the worker must not require proofs).
        minted_by: Who issued the decision link being redeemed, if any.
    """

    def __init__(
        self,
        client: Client,
        agent: Agent | None,
        view: RunView,
        principal: Principal,
        entries: list[ContinueToolEntry],
        source: DecisionSource = DecisionSource.API,
        *,
        settings: Settings | None = None,
        minted_by: str | None = None,
    ) -> None:
        self.run = RunClient.of(client, view.run_id)
        self.agent = agent
        self.view = view
        self.principal = principal
        self.entries = entries
        self.source = source
        self.minted_by = minted_by
        self.settings = settings
        self.started = time.perf_counter()
        self.decisions: list[DecisionInput] = []

    async def refuse(self, err: ApiError) -> NoReturn:
        """Record the refusal in the run's audit trail (if it may be), then raise it."""
        await refuse(
            self.run,
            self.principal,
            self.entries,
            self.source,
            err,
            open_run=not self.view.status.is_final,
        )

    async def check(self, *, session_id: str | None, max_decisions: int) -> DecideRequest:
        """The ``decide`` request, after the checks that belong to the API.

        Raises:
            ApiError: 409 ``session_mismatch`` or ``not_paused``, 422
                ``invalid_tool_args`` or ``invalid_request``.
        """
        run = self.view
        if len(self.entries) > max_decisions:
            await self.refuse(
                ApiError.invalid(f"tools: at most {max_decisions} decisions per request")
            )
        if session_id is not None and session_id != run.session_id:
            await self.refuse(
                ApiError(
                    status.HTTP_409_CONFLICT,
                    ErrorCode.SESSION_MISMATCH,
                    access.session_mismatch(run.run_id, session_id),
                )
            )
        if run.status is not RunStatus.PAUSED:
            await self.refuse(
                ApiError.refusal(ErrorCode.NOT_PAUSED, access.not_paused(run.run_id, run.status))
            )
        self.decisions = [await self._decision(i, e) for i, e in enumerate(self.entries)]
        request = DecideRequest(
            decisions=self.decisions,
            principal=self.principal,
            source=self.source,
            minted_by=self.minted_by,
        )
        return sealed(self.settings, run.run_id, request)

    async def _decision(self, index: int, entry: ContinueToolEntry) -> DecisionInput:
        args = entry.tool_args
        call = next((t for t in self.view.tools if t.tool_call_id == entry.tool_call_id), None)
        edited = (
            call is not None
            and call.allow_edit
            and args is not None
            and args_digest(args) != call.args_digest
        )
        tool = self.agent.get_tool(call.tool_name) if call and self.agent else None
        if edited and tool is not None and args is not None:
            # Edited arguments reach a tool only after passing its schema again.
            try:
                args = tool.validate_args(args)
            except ToolArgumentsError as err:
                await self.refuse(
                    ApiError.refusal(ErrorCode.INVALID_ARGS, f"tools.{index}.tool_args: {err}")
                )
        return decision_input(entry, args)

    async def send(self, call: Awaitable[T]) -> T:
        """Await the ``decide`` call, turning the workflow's refusals into HTTP errors.

        Raises:
            ApiError: The refusal's status and code (after recording it), 409
                ``not_paused`` when the run closed meanwhile, 503 when no
                worker took the decisions.
        """
        try:
            result = await _accepted(call)
        except RunClosedError as err:
            # A closed run records nothing more: answer the refusal only.
            raise ApiError.refusal(err.code, err.message) from None
        except DecisionRefusedError as err:
            await self.refuse(ApiError.refusal(err.code, err.message))
        metrics.observe_decisions(self.decisions, time.perf_counter() - self.started)
        return result


async def _accepted(call: Awaitable[T]) -> T:
    """Await a ``decide`` call; 503 when no worker took the decisions in time."""
    try:
        return await call
    except NotAcceptedError as err:
        raise ApiError.worker_unavailable(
            f"{err}; they were not applied (a worker that takes them later refuses them"
            " as too late): send them again once GET shows the run answering"
        ) from None


def sealed(settings: Settings | None, run_id: str, request: DecideRequest) -> DecideRequest:
    """``request`` as the API sends it: with its deadline, and its proof when there are keys.

    The deadline is the wait budget, less a margin for the trip back: the
    validator refuses decisions a worker takes after it, so a 503 (no worker
    took them in time) leaves nothing to apply later. The workflow's
    validator accepts decisions only with the proof when the worker has keys
    (without them it must not require proofs). Without ``settings`` (tests
    that call the workflow directly) the request goes as it is.
    """
    if settings is None:
        return request
    now = datetime.now(UTC)
    budget = settings.wait_budget
    request = request.model_copy(
        update={"not_after": now + budget - min(DEADLINE_MARGIN, budget / 4)}
    )
    keys = decision_proof.from_settings(
        [k.get_secret_value() for k in settings.decision_proof_keys]
    )
    if keys is None:
        return request
    return keys.sign(run_id, request, now)


def decision_input(entry: ContinueToolEntry, args: JsonObject | None) -> DecisionInput:
    """The decision sent to the workflow for one requested entry, with ``args`` as checked."""
    return DecisionInput(
        tool_call_id=entry.tool_call_id,
        confirmed=entry.confirmed,
        note=entry.note,
        tool_name=entry.tool_name,
        tool_args=args,
        args_digest=entry.args_digest,
    )


async def decide_unread(
    client: Client,
    agent_id: str,
    run_id: str,
    principal: Principal,
    entries: list[ContinueToolEntry],
    *,
    session_id: str | None,
    settings: Settings,
    waits: PendingWaits,
) -> DecideResult | None:
    """Send decisions without reading the run first: one ``decide`` update.

    The checks the API makes on a run it read travel in the request's
    :class:`DecisionScope` and the workflow's validator makes them instead,
    so an accepted decision costs no query (and no worker task) before it.

    Returns:
        As :meth:`RunClient.decide`.

    Raises:
        ReadFirstError: The run is closed or missing, or the workflow refused
            with one of :data:`countersign.access.READ_FIRST` (who may see the
            run, or an edit to check): nothing changed and nothing was
            recorded; redo the request on the path that reads the run, which
            answers it as it always has.
        ApiError: The run's own rules refused the decisions (after recording
            the refusal), in the order the reading path checks them; 503 when
            no worker took the decisions.
    """
    if len(entries) > settings.max_decisions_per_request:
        raise ReadFirstError
    started = time.perf_counter()
    decisions = [decision_input(e, e.tool_args) for e in entries]
    request = DecideRequest(
        decisions=decisions,
        principal=principal,
        source=DecisionSource.API,
        scope=DecisionScope(agent_id=agent_id, session_id=session_id),
    )
    request = sealed(settings, run_id, request)
    run = RunClient.of(client, run_id)
    try:
        result = await _accepted(waits.run(run.decide(request, wait=settings.wait_budget)))
    except RunClosedError:
        raise ReadFirstError from None
    except DecisionRefusedError as err:
        if err.code in access.READ_FIRST:
            raise ReadFirstError from None
        # The validator got past who may decide: the run's own rules refused.
        await refuse(
            run,
            principal,
            entries,
            DecisionSource.API,
            ApiError.refusal(err.code, err.message),
            open_run=True,
        )
    metrics.observe_decisions(decisions, time.perf_counter() - started)
    return result


class ReadFirstError(Exception):
    """Decisions sent unread were refused: redo them on the path that reads the run."""


async def decide_one(
    view: RunView,
    entry: ContinueToolEntry,
    principal: Principal,
    *,
    source: DecisionSource,
    client: Client,
    registry: AgentRegistry,
    settings: Settings,
    waits: PendingWaits,
    minted_by: str | None = None,
) -> Response:
    """Send one decision on a run the principal may decide; answer with the run.

    The approvals API and decision links decide one call at a time this way.

    Raises:
        ApiError: The refusal (recorded in the audit trail while the run is open).
    """
    attempt = DecisionAttempt(
        client,
        registry.get(view.agent_id),
        view,
        principal,
        [entry],
        source=source,
        settings=settings,
        minted_by=minted_by,
    )
    if refusal := policy.decide_refusal(principal, view):
        await attempt.refuse(refusal)
    request = await attempt.check(session_id=None, max_decisions=1)
    result = await attempt.send(waits.run(attempt.run.decide(request, wait=settings.wait_budget)))
    if result is None:
        return run_response(await attempt.run.view(), settled=False)
    return run_response(result.run)


def nothing_to_decide(call: ToolCallView) -> ApiError:
    """The refusal for a gated call that awaits no decision, worded as the workflow words it.

    The routes that act on one call (issuing or redeeming a decision link) say
    it before asking the workflow, so a replayed link reads as what it is even
    once the run has moved on.
    """
    call_id = call.tool_call_id
    if call.state is CallState.EXPIRED and call.expires_at is not None:
        return ApiError.refusal(
            ErrorCode.EXPIRED,
            f"confirmation of {call_id} expired at {call.expires_at.isoformat()}",
        )
    if call.state is CallState.CANCELLED:
        return ApiError.refusal(
            ErrorCode.CALL_CANCELLED,
            f"tool call {call_id} was denied because its run was cancelled",
        )
    if call.state in (CallState.PENDING, CallState.INVALID):
        return ApiError.refusal(
            ErrorCode.NOT_AWAITING, f"tool call {call_id} does not await confirmation"
        )
    last = call.decisions[-1].principal.id if call.decisions else None
    by = f" by {last}" if last else ""
    return ApiError.refusal(
        ErrorCode.ALREADY_DECIDED,
        f"tool call {call_id} was already decided{by} ({call.state.value})",
    )


def token_secret(settings: Settings) -> str:
    """The decision-token secret.

    Raises:
        ApiError: 404 ``decision_tokens_disabled`` when none is configured.
    """
    if settings.decision_token_secret is None:
        raise ApiError(
            status.HTTP_404_NOT_FOUND,
            ErrorCode.DECISION_TOKENS_DISABLED,
            "decision links are off: set COUNTERSIGN_DECISION_TOKEN_SECRET to use them",
        )
    return settings.decision_token_secret.get_secret_value()
