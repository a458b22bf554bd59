"""One attempt at deciding calls of a run, from ``/continue`` or the approvals API.

The API checks what only it can check (the session, that the run is paused,
edited arguments against the tool's schema); the workflow's ``decide``
validator checks everything else. Either way a refusal becomes an HTTP error
and, best effort, an event in the run's audit trail. The principal always comes
from the credentials, never from the body.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import NoReturn, TypeVar

from fastapi import status
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from api import metrics
from api.errors import SESSION_MISMATCH, ApiError, is_connection_failure
from api.schemas import ContinueToolEntry
from api.service import RunHandle, finished_run_error, record_refusal, refusal_of
from countersign import Agent, ToolArgumentsError
from countersign.digest import args_digest
from countersign.models import (
    DecideRequest,
    DecisionInput,
    DecisionSource,
    ErrorCode,
    Principal,
    RunStatus,
    RunView,
)
from countersign.runs import NotAcceptedError, run_handle

T = TypeVar("T")


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
    """

    def __init__(
        self,
        client: Client,
        agent: Agent | None,
        view: RunView,
        principal: Principal,
        entries: list[ContinueToolEntry],
        source: DecisionSource = DecisionSource.API,
    ) -> None:
        self.handle: RunHandle = run_handle(client, view.run_id)
        self.agent = agent
        self.view = view
        self.principal = principal
        self.entries = entries
        self.source = source
        self.started = time.perf_counter()
        self.decisions: list[DecisionInput] = []

    async def refuse(self, err: ApiError) -> NoReturn:
        """Record the refusal in the run's audit trail (if it is open), then raise it."""
        metrics.record_refused_decisions(len(self.entries))
        if not self.view.status.is_final:
            await record_refusal(
                self.handle,
                self.principal,
                [e.tool_call_id for e in self.entries],
                err.code,
                err.detail,
                self.source,
            )
        raise err

    async def check(self, *, session_id: str | None, max_decisions: int) -> DecideRequest:
        """The ``decide`` request, after the checks that belong to the API.

        Raises:
            ApiError: 409 ``session_mismatch`` or ``not_paused``, 422
                ``invalid_tool_args`` or ``invalid_request``.
        """
        run = self.view
        if len(self.entries) > max_decisions:
            await self.refuse(
                ApiError(
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    "invalid_request",
                    f"tools: at most {max_decisions} decisions per request",
                )
            )
        if session_id is not None and session_id != run.session_id:
            await self.refuse(
                ApiError(
                    status.HTTP_409_CONFLICT,
                    SESSION_MISMATCH,
                    f"run {run.run_id} belongs to another session than {session_id!r}",
                )
            )
        if run.status is not RunStatus.PAUSED:
            await self.refuse(
                ApiError.refusal(
                    ErrorCode.NOT_PAUSED,
                    f"run {run.run_id} is {run.status.value}, not PAUSED: nothing to decide",
                )
            )
        self.decisions = [await self._decision(i, e) for i, e in enumerate(self.entries)]
        return DecideRequest(decisions=self.decisions, principal=self.principal, source=self.source)

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
        return DecisionInput(
            tool_call_id=entry.tool_call_id,
            confirmed=entry.confirmed,
            note=entry.note,
            tool_name=entry.tool_name,
            tool_args=args,
            args_digest=entry.args_digest,
        )

    async def send(self, call: Awaitable[T]) -> T:
        """Await the update call, turning the workflow's refusals into HTTP errors.

        Raises:
            ApiError: The refusal's status and code (after recording it), 409
                ``not_paused`` when the run closed meanwhile, 503 when Temporal
                is unreachable.
        """
        try:
            result = await call
        except WorkflowUpdateFailedError as err:
            refusal = refusal_of(err)
            if refusal is None:
                raise
            code, message = refusal
            await self.refuse(ApiError.refusal(code, message))
        except NotAcceptedError as err:
            raise ApiError.worker_unavailable(
                f"{err}; Temporal holds them and they apply, if still valid, when a worker"
                " takes the run: GET the run to see"
            ) from None
        except RPCError as err:
            if is_connection_failure(err):
                raise ApiError.temporal_unavailable(err) from None
            # Updates to a closed workflow fail at the RPC level.
            raise finished_run_error(self.view.run_id, err) from None
        metrics.observe_decisions(self.decisions, time.perf_counter() - self.started)
        return result
