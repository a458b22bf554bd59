"""``AgentRunWorkflow``: one agent run, its tool calls and their confirmations.

The workflow holds the conversation, the per-call state machine (DESIGN §3),
the pending approvals and the audit trail. It does no I/O: each model turn and
each tool call is an activity, and a gated call waits on a durable condition
with a TTL timer whose default outcome is deny.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from countersign import search_attributes as sa
    from countersign.digest import GENESIS_HASH, args_digest, audit_event_hash
    from countersign.models import (
        DELIVER_WEBHOOK_ACTIVITY,
        EXECUTE_TOOL_ACTIVITY,
        MODEL_TURN_ACTIVITY,
        AuditEvent,
        AuditKind,
        CallRecord,
        CallState,
        ChatMessage,
        DecideRequest,
        DecideResult,
        Decision,
        DecisionInput,
        DecisionSource,
        ErrorCode,
        JsonObject,
        ModelToolCall,
        ModelTurn,
        ModelTurnInput,
        Principal,
        ProposedCall,
        RefusedAttempt,
        RunInput,
        RunState,
        RunStatus,
        RunView,
        TimeoutAction,
        ToolInvocation,
        ToolResult,
        WebhookDelivery,
        WebhookEvent,
    )

TOOL_MAX_ATTEMPTS = 3
# workflow.patched id: a cancel_run expiry denies the rest of its batch.
CANCEL_DENIES_BATCH = "cancel-run-denies-pending-batch"
# workflow.patched id: a cancellation through Temporal is recorded as CANCELLED.
RECORD_OPERATOR_CANCEL = "record-operator-cancel"


def _refuse(code: ErrorCode, message: str, tool_call_id: str | None = None) -> ApplicationError:
    # The type carries the stable code the API maps to an HTTP status.
    return ApplicationError(message, tool_call_id, type=code.value, non_retryable=True)


def _error_message(err: BaseException) -> str:
    cause: BaseException | None = err
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, FailureError):
        # The message alone: str() prefixes the failure type, which readers
        # of the run do not need.
        return cause.message
    return str(cause) if cause is not None else str(err)


@workflow.defn
class AgentRunWorkflow:
    """One agent run: model turns, tool calls, pauses for confirmation."""

    @workflow.init
    def __init__(self, input: RunInput) -> None:
        self._input = input
        now = workflow.now()
        self._state = input.carried or RunState(
            messages=[*input.context, ChatMessage(role="user", content=input.message)],
            created_at=now,
            updated_at=now,
        )
        self._cancel_reason: str | None = None
        self._deliveries: list[asyncio.Task[int]] = []

    # ----------------------------------------------------------------- run

    @workflow.run
    async def run(self, input: RunInput) -> RunView:
        """Run the model/tool loop until a final answer, an error or a cancel."""
        state = self._state
        if input.carried is None:
            self._audit(AuditKind.RUN_STARTED, principal=input.requester, detail=input.message)
        try:
            while state.status is RunStatus.RUNNING:
                # Only between turns with no caller attached (a waiting update
                # must get its answer from this run) and no webhook in flight (a
                # receiver that is down must not hold the run up).
                if (
                    workflow.info().is_continue_as_new_suggested()
                    and workflow.all_handlers_finished()
                    and all(delivery.done() for delivery in self._deliveries)
                ):
                    await self._drain_deliveries()
                    workflow.continue_as_new(input.model_copy(update={"carried": state}))
                if state.turns >= input.options.max_turns:
                    self._finish(
                        RunStatus.ERROR,
                        error=f"the model kept calling tools: stopped after "
                        f"{input.options.max_turns} turns (max_turns)",
                    )
                    break
                state.turns += 1
                turn = await self._model_turn(state.turns)
                state.messages.append(
                    ChatMessage(
                        role="assistant",
                        content=turn.content,
                        tool_calls=[
                            ModelToolCall(
                                tool_call_id=c.tool_call_id,
                                tool_name=c.tool_name,
                                arguments=c.raw_arguments,
                            )
                            for c in turn.calls
                        ],
                    )
                )
                if not turn.calls:
                    self._finish(RunStatus.COMPLETED, content=turn.content or "")
                    break
                await self._handle_calls(state.turns, turn.calls)
                if self._cancel_reason is not None:
                    self._finish(RunStatus.CANCELLED, error=self._cancel_reason)
        except ActivityError as err:
            self._finish(RunStatus.ERROR, error=_error_message(err))
        except asyncio.CancelledError:
            # Cancelled through Temporal (UI, CLI, API): record it, deny what still
            # waits, and let waiting callers see the outcome before the cancel.
            if not workflow.patched(RECORD_OPERATOR_CANCEL):
                raise
            self._cancel_reason = "run cancelled through Temporal"
            for record in self._state.calls:
                if record.state is CallState.AWAITING_CONFIRMATION:
                    self._deny_on_cancel(record, {"run_cancelled": True})
            self._finish(RunStatus.CANCELLED, error=self._cancel_reason)
            await workflow.wait_condition(workflow.all_handlers_finished)
            await self._drain_deliveries()
            raise
        # Decisions and waiters still in flight must see the final state.
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._drain_deliveries()
        return self._view()

    async def _model_turn(self, turn: int) -> ModelTurn:
        options = self._input.options
        result: ModelTurn = await workflow.execute_activity(
            MODEL_TURN_ACTIVITY,
            ModelTurnInput(
                run_id=self._input.run_id,
                agent_id=self._input.agent_id,
                turn=turn,
                messages=self._state.messages,
                default_confirmation_ttl=options.default_confirmation_ttl,
            ),
            result_type=ModelTurn,
            start_to_close_timeout=options.llm_timeout,
            retry_policy=RetryPolicy(
                initial_interval=options.llm_retry_initial_interval,
                backoff_coefficient=2.0,
                maximum_interval=timedelta(seconds=60),
                maximum_attempts=options.llm_max_attempts,
            ),
            summary=f"model turn {turn}",
        )
        self._state.usage = self._state.usage.plus(result.usage)
        self._state.model = result.model
        self._state.demo_model = result.demo
        return result

    async def _handle_calls(self, turn: int, calls: list[ProposedCall]) -> None:
        records = [self._record_call(turn, call) for call in calls]
        ungated = [r for r in records if r.state is CallState.PENDING and r.policy is None]
        gated = [r for r in records if r.state is CallState.PENDING and r.policy is not None]
        await asyncio.gather(*(self._execute(r) for r in ungated))
        if gated:
            await self._pause(gated)
            if self._cancel_reason is None:
                approved = [r for r in gated if r.state is CallState.APPROVED]
                await asyncio.gather(*(self._execute(r) for r in approved))
        for record in records:
            self._state.messages.append(
                ChatMessage(
                    role="tool",
                    tool_call_id=record.tool_call_id,
                    tool_name=record.tool_name,
                    content=record.result or "",
                )
            )

    def _record_call(self, turn: int, call: ProposedCall) -> CallRecord:
        record = CallRecord(
            tool_call_id=call.tool_call_id,
            tool_name=call.tool_name,
            tool_args=call.tool_args,
            raw_arguments=call.raw_arguments,
            turn=turn,
            args_digest=args_digest(call.tool_args),
            policy=call.confirmation,
            arguments_error=call.arguments_error,
        )
        if call.arguments_error is not None:
            # Invalid arguments never reach a person: the model reads the error.
            record.state = CallState.INVALID
            record.result = f"error: {call.arguments_error}"
        self._state.calls.append(record)
        return record

    # --------------------------------------------------------------- pause

    async def _pause(self, gated: list[CallRecord]) -> None:
        now = workflow.now()
        for record in gated:
            assert record.policy is not None
            record.state = CallState.AWAITING_CONFIRMATION
            record.expires_at = now + record.policy.ttl
            self._audit(
                AuditKind.APPROVAL_REQUESTED,
                tool_call_id=record.tool_call_id,
                detail=f"{record.tool_name} awaits confirmation",
                data={
                    "tool_name": record.tool_name,
                    "tool_args": record.tool_args,
                    "args_digest": record.args_digest,
                    "expires_at": record.expires_at.isoformat(),
                    "approvals_required": record.policy.approvals_required,
                    "approver_roles": list(record.policy.approver_roles),
                },
            )
        self._state.status = RunStatus.PAUSED
        self._state.pause_count += 1
        self._settle()
        self._notify(
            WebhookEvent.APPROVAL_REQUESTED,
            {"tools": [r.view().model_dump(mode="json") for r in gated]},
        )

        def waiting() -> list[CallRecord]:
            return [r for r in gated if r.state is CallState.AWAITING_CONFIRMATION]

        while pending := waiting():
            # An expiry with on_timeout=cancel_run ends the run at once, so the
            # calls still awaiting are denied rather than left pending in a
            # cancelled run. Patched: histories recorded before this change
            # kept waiting here, and must replay as they ran.
            if self._cancel_reason is not None and workflow.patched(CANCEL_DENIES_BATCH):
                for record in pending:
                    self._deny_on_cancel(record)
                break
            next_expiry = min(r.expires_at for r in pending if r.expires_at is not None)
            timeout = max(next_expiry - workflow.now(), timedelta(milliseconds=1))
            try:
                await workflow.wait_condition(
                    lambda: not waiting(), timeout=timeout, timeout_summary="confirmation TTL"
                )
            except TimeoutError:
                now = workflow.now()
                for record in waiting():
                    assert record.expires_at is not None
                    if record.expires_at <= now or record.expires_at == next_expiry:
                        self._expire(record)
            else:
                self._describe_pause()
        self._state.status = RunStatus.RUNNING
        self._publish()

    def _expire(self, record: CallRecord) -> None:
        assert record.policy is not None and record.expires_at is not None
        self._deny(
            record,
            f"denied: confirmation expired at {record.expires_at.isoformat()}",
            {"on_timeout": record.policy.on_timeout.value},
        )
        if record.policy.on_timeout is TimeoutAction.CANCEL_RUN and self._cancel_reason is None:
            self._cancel_reason = (
                f"run cancelled: confirmation of {record.tool_name} ({record.tool_call_id})"
                f" expired at {record.expires_at.isoformat()}"
            )

    def _deny_on_cancel(self, record: CallRecord, data: JsonObject | None = None) -> None:
        assert self._cancel_reason is not None
        self._deny(
            record,
            f"denied: {self._cancel_reason}",
            data or {"on_timeout": TimeoutAction.CANCEL_RUN.value, "run_cancelled": True},
        )

    def _deny(self, record: CallRecord, result: str, data: JsonObject) -> None:
        """End a waiting call as EXPIRED (a deny), recorded and pushed."""
        record.state = CallState.EXPIRED
        record.result = result
        self._audit(
            AuditKind.APPROVAL_EXPIRED,
            tool_call_id=record.tool_call_id,
            detail=result,
            data=data,
        )
        self._notify(WebhookEvent.APPROVAL_EXPIRED, {"tool": record.view().model_dump(mode="json")})

    # ----------------------------------------------------------- decisions

    @workflow.update
    async def decide(self, request: DecideRequest) -> DecideResult:
        """Apply decisions atomically, then return the run once it settles again.

        When calls of the batch are still undecided the run stays paused and
        the result comes back at once.
        """
        # Validated again: updates accepted in the same workflow task run one
        # after the other, and the first may have decided what the second names.
        self._check(request)
        settled_before = self._state.settle_seq
        self._apply(request)
        if self._state.status is RunStatus.PAUSED and self._batch_waiting():
            return DecideResult(
                applied=[d.tool_call_id for d in request.decisions], run=self._view()
            )
        await workflow.wait_condition(lambda: self._state.settle_seq > settled_before)
        return DecideResult(applied=[d.tool_call_id for d in request.decisions], run=self._view())

    @decide.validator
    def _validate_decide(self, request: DecideRequest) -> None:
        self._check(request)

    @workflow.signal(name="decide_signal")
    def decide_signal(self, request: DecideRequest) -> None:
        """Same payload as ``decide``, for operators deciding from the CLI or UI.

        A signal cannot be refused, so an invalid one is recorded in the audit
        trail as a refused attempt and changes nothing else.
        """
        request = request.model_copy(update={"source": DecisionSource.SIGNAL})
        try:
            self._check(request)
        except ApplicationError as err:
            self._record_refusal(
                RefusedAttempt(
                    principal=request.principal,
                    source=DecisionSource.SIGNAL,
                    tool_call_ids=[d.tool_call_id for d in request.decisions],
                    code=err.type or "refused",
                    reason=err.message,
                )
            )
            return
        self._apply(request)

    @workflow.signal
    def record_refused_attempt(self, attempt: RefusedAttempt) -> None:
        """Record a decision the API refused, so the audit trail shows it."""
        self._record_refusal(attempt)

    @workflow.update
    async def wait_settled(self, after_seq: int) -> RunView:
        """Return the run once it settles (pauses or ends) after ``after_seq``."""
        await workflow.wait_condition(lambda: self._state.settle_seq > after_seq)
        return self._view()

    @workflow.query
    def state(self) -> RunView:
        """The whole run view."""
        return self._view()

    @workflow.query
    def audit(self) -> list[AuditEvent]:
        """The run's audit trail, oldest first."""
        return self._state.audit

    def _batch_waiting(self) -> bool:
        return any(c.state is CallState.AWAITING_CONFIRMATION for c in self._state.calls)

    def _check(self, request: DecideRequest) -> None:
        """Refuse a request that must not change anything; all or nothing.

        Raises:
            ApplicationError: Whose ``type`` is an :class:`ErrorCode`.
        """
        if not request.decisions:
            raise _refuse(ErrorCode.EMPTY_DECISION, "no decisions in the request")
        seen: set[str] = set()
        for decision in request.decisions:
            if decision.tool_call_id in seen:
                raise _refuse(
                    ErrorCode.DUPLICATE_CALL,
                    f"tool call {decision.tool_call_id} is named twice in one request",
                    decision.tool_call_id,
                )
            seen.add(decision.tool_call_id)
            self._check_one(decision, request.principal)

    def _check_one(self, decision: DecisionInput, principal: Principal) -> None:
        call_id = decision.tool_call_id
        record = self._find(call_id)
        if record is None:
            raise _refuse(ErrorCode.UNKNOWN_CALL, f"run has no tool call {call_id}", call_id)
        if record.state is CallState.EXPIRED:
            assert record.expires_at is not None
            raise _refuse(
                ErrorCode.EXPIRED,
                f"confirmation of {call_id} expired at {record.expires_at.isoformat()}",
                call_id,
            )
        if record.policy is None or record.state in (CallState.PENDING, CallState.INVALID):
            raise _refuse(
                ErrorCode.NOT_AWAITING, f"tool call {call_id} does not await confirmation", call_id
            )
        if record.state is not CallState.AWAITING_CONFIRMATION:
            last = record.decisions[-1] if record.decisions else None
            by = f" by {last.principal.id}" if last else ""
            raise _refuse(
                ErrorCode.ALREADY_DECIDED,
                f"tool call {call_id} was already decided{by} ({record.state.value})",
                call_id,
            )
        assert record.expires_at is not None
        if workflow.now() >= record.expires_at:
            raise _refuse(
                ErrorCode.EXPIRED,
                f"confirmation of {call_id} expired at {record.expires_at.isoformat()}",
                call_id,
            )
        if decision.tool_name is not None and decision.tool_name != record.tool_name:
            raise _refuse(
                ErrorCode.TOOL_MISMATCH,
                f"tool call {call_id} is {record.tool_name}, not {decision.tool_name}",
                call_id,
            )
        if decision.args_digest is not None and decision.args_digest != record.args_digest:
            raise _refuse(
                ErrorCode.ARGS_MISMATCH,
                f"args_digest does not match the arguments of {call_id}",
                call_id,
            )
        policy = record.policy
        if decision.tool_args is not None and args_digest(decision.tool_args) != record.args_digest:
            if not policy.allow_edit:
                raise _refuse(
                    ErrorCode.ARGS_MISMATCH,
                    f"tool_args differ from the pending arguments of {call_id}"
                    f" and {record.tool_name} does not allow edits",
                    call_id,
                )
            if policy.approvals_required > 1:
                raise _refuse(
                    ErrorCode.ARGS_MISMATCH,
                    f"{record.tool_name} needs several approvals, so its arguments cannot be"
                    " edited by one approver",
                    call_id,
                )
        if policy.approver_roles and not principal.has_any_role(policy.approver_roles):
            raise _refuse(
                ErrorCode.FORBIDDEN_ROLE,
                f"deciding {record.tool_name} needs one of the roles "
                f"{', '.join(policy.approver_roles)}",
                call_id,
            )
        if decision.confirmed:
            if principal.id == self._input.requester.id and not policy.allow_self_approval:
                raise _refuse(
                    ErrorCode.SELF_APPROVAL,
                    f"{principal.id} requested this run and cannot approve {record.tool_name}",
                    call_id,
                )
            if any(d.principal.id == principal.id for d in record.approvals):
                raise _refuse(
                    ErrorCode.ALREADY_APPROVED_BY,
                    f"{principal.id} has already approved {call_id}; another approver is needed",
                    call_id,
                )

    def _apply(self, request: DecideRequest) -> None:
        now = workflow.now()
        for item in request.decisions:
            record = self._find(item.tool_call_id)
            assert record is not None and record.policy is not None
            edited = (
                item.tool_args
                if item.confirmed
                and item.tool_args is not None
                and args_digest(item.tool_args) != record.args_digest
                else None
            )
            record.decisions.append(
                Decision(
                    principal=request.principal,
                    confirmed=item.confirmed,
                    note=item.note,
                    source=request.source,
                    decided_at=now,
                    edited_args=edited,
                )
            )
            if not item.confirmed:
                record.state = CallState.REJECTED
                note = f": {item.note}" if item.note else ""
                record.result = f"rejected by {request.principal.id}{note}"
            elif len(record.approvals) >= record.policy.approvals_required:
                record.state = CallState.APPROVED
                if edited is not None:
                    record.tool_args = edited
                    record.args_digest = args_digest(edited)
            self._audit(
                AuditKind.DECISION_RECORDED,
                tool_call_id=record.tool_call_id,
                principal=request.principal,
                source=request.source,
                detail=("approved" if item.confirmed else "rejected")
                + (f": {item.note}" if item.note else ""),
                data={
                    "confirmed": item.confirmed,
                    "args_digest": record.args_digest,
                    "edited": edited is not None,
                    "approvals": len(record.approvals),
                    "approvals_required": record.policy.approvals_required,
                    "state": record.state.value,
                },
            )
            self._notify(
                WebhookEvent.APPROVAL_DECIDED,
                {
                    "tool": record.view().model_dump(mode="json"),
                    "decision": record.decisions[-1].model_dump(mode="json"),
                },
            )
        self._describe_pause()

    def _record_refusal(self, attempt: RefusedAttempt) -> None:
        self._audit(
            AuditKind.DECISION_REFUSED,
            tool_call_id=attempt.tool_call_ids[0] if len(attempt.tool_call_ids) == 1 else None,
            principal=attempt.principal,
            source=attempt.source,
            detail=f"{attempt.code}: {attempt.reason}",
            data={"code": attempt.code, "tool_call_ids": list(attempt.tool_call_ids)},
        )

    # ------------------------------------------------------------ execution

    async def _execute(self, record: CallRecord) -> None:
        options = self._input.options
        record.state = CallState.EXECUTING
        try:
            result: ToolResult = await workflow.execute_activity(
                EXECUTE_TOOL_ACTIVITY,
                ToolInvocation(
                    run_id=self._input.run_id,
                    agent_id=self._input.agent_id,
                    tool_call_id=record.tool_call_id,
                    tool_name=record.tool_name,
                    tool_args=record.tool_args,
                    idempotency_key=f"{self._input.run_id}:{record.tool_call_id}",
                    output_limit=options.tool_output_limit,
                ),
                result_type=ToolResult,
                start_to_close_timeout=options.tool_timeout,
                heartbeat_timeout=options.tool_heartbeat_timeout,
                retry_policy=RetryPolicy(maximum_attempts=TOOL_MAX_ATTEMPTS),
                summary=f"{record.tool_name} {record.tool_call_id}",
            )
        except ActivityError as err:
            record.state = CallState.FAILED
            record.result = f"error: {record.tool_name} failed: {_error_message(err)}"
        else:
            record.state = CallState.EXECUTED if result.ok else CallState.FAILED
            record.result = result.output if result.ok else f"error: {result.output}"
            record.result_truncated = result.truncated
        self._audit(
            AuditKind.TOOL_EXECUTED
            if record.state is CallState.EXECUTED
            else AuditKind.TOOL_FAILED,
            tool_call_id=record.tool_call_id,
            detail=record.result or "",
            data={"tool_name": record.tool_name, "args_digest": record.args_digest},
        )

    # ------------------------------------------------------------- helpers

    def _notify(self, event: WebhookEvent, data: JsonObject) -> None:
        """Push an event to the webhook receivers, durably, without waiting for it.

        Deliveries go one after the other, so receivers get a run's events in
        the order they happened even when an earlier one needed retries.
        """
        options = self._input.options
        if not options.webhooks:
            return
        state = self._state
        state.webhooks_sent += 1
        delivery = WebhookDelivery(
            delivery_id=f"{self._input.run_id}:{state.webhooks_sent}",
            event=event,
            run_id=self._input.run_id,
            agent_id=self._input.agent_id,
            occurred_at=workflow.now(),
            data=data,
        )
        previous = self._deliveries[-1] if self._deliveries else None

        async def deliver() -> int:
            if previous is not None:
                await workflow.wait([previous])
            sent: int = await workflow.execute_activity(
                DELIVER_WEBHOOK_ACTIVITY,
                delivery,
                result_type=int,
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=options.webhook_retry_for,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(minutes=10),
                ),
                summary=event.value,
            )
            return sent

        self._deliveries.append(asyncio.create_task(deliver()))

    async def _drain_deliveries(self) -> None:
        """Wait for webhook deliveries; one that gives up is logged, not fatal."""
        for outcome in await asyncio.gather(*self._deliveries, return_exceptions=True):
            if isinstance(outcome, BaseException):
                workflow.logger.warning("webhook delivery gave up: %s", _error_message(outcome))
        self._deliveries.clear()

    def _find(self, tool_call_id: str) -> CallRecord | None:
        return next((c for c in self._state.calls if c.tool_call_id == tool_call_id), None)

    def _finish(
        self, status: RunStatus, *, content: str | None = None, error: str | None = None
    ) -> None:
        self._state.status = status
        self._state.content = content if content is not None else error
        self._state.error = error
        self._audit(
            AuditKind.RUN_FINISHED,
            detail=status.value + (f": {error}" if error else ""),
            data={"status": status.value},
        )
        self._settle()
        self._notify(
            WebhookEvent.RUN_COMPLETED,
            {"status": status.value, "content": self._state.content, "error": error},
        )

    def _settle(self) -> None:
        """Mark a point where callers waiting for the run get an answer."""
        self._state.settle_seq += 1
        self._publish()
        self._describe_pause()

    def _publish(self) -> None:
        pending = [c for c in self._state.calls if c.state is CallState.AWAITING_CONFIRMATION]
        self._state.updated_at = workflow.now()
        workflow.upsert_search_attributes(
            [
                sa.STATUS.value_set(self._state.status.value),
                sa.PENDING_APPROVALS.value_set(len(pending)),
                sa.PENDING_TOOLS.value_set(sorted({c.tool_name for c in pending})),
            ]
        )

    def _describe_pause(self) -> None:
        pending = [c for c in self._state.calls if c.state is CallState.AWAITING_CONFIRMATION]
        if not pending:
            workflow.set_current_details(f"**{self._state.status.value}**")
            return
        lines = [f"**PAUSED**: {len(pending)} tool call(s) await confirmation", ""]
        for call in pending:
            assert call.policy is not None and call.expires_at is not None
            who = ", ".join(call.policy.approver_roles) or "any approver"
            got = len(call.approvals)
            lines.append(
                f"- `{call.tool_name}` `{call.tool_call_id}` args `{call.raw_arguments}`: "
                f"{got}/{call.policy.approvals_required} approvals from {who}, "
                f"denied at {call.expires_at.isoformat()}"
            )
        workflow.set_current_details("\n".join(lines))

    def _audit(
        self,
        kind: AuditKind,
        *,
        tool_call_id: str | None = None,
        principal: Principal | None = None,
        source: DecisionSource | None = None,
        detail: str = "",
        data: JsonObject | None = None,
    ) -> None:
        trail = self._state.audit
        event = AuditEvent(
            seq=len(trail),
            at=workflow.now(),
            kind=kind,
            run_id=self._input.run_id,
            tool_call_id=tool_call_id,
            principal=principal,
            source=source,
            detail=detail,
            data=data or {},
            prev_hash=trail[-1].hash if trail else GENESIS_HASH,
            hash="",
        )
        event.hash = audit_event_hash(event)
        trail.append(event)

    def _view(self) -> RunView:
        state = self._state
        return RunView(
            run_id=self._input.run_id,
            agent_id=self._input.agent_id,
            session_id=self._input.session_id,
            user_id=self._input.user_id,
            status=state.status,
            content=state.content,
            message=self._input.message,
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
            requester=self._input.requester,
        )
