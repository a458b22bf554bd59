"""``AgentRunWorkflow``: one agent run, its tool calls and their confirmations.

The workflow holds the conversation, the pending approvals and the run state;
it runs the model/tool loop, pauses gated calls and answers the handlers. It
does no I/O: each model turn and each tool call is an activity, and a gated
call waits on a durable condition with a TTL timer whose default outcome is
deny. The rules of a decision, the audit chain, the webhook queue and the
visibility text live in the modules beside this one; the call and run state
machines are in ``docs/architecture.md``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    # One module per import: `from workflows import x` loads x inside the
    # sandbox for every run (the parent package is not passed through).
    import workflows.decision_rules as decision_rules
    import workflows.run_limits as run_limits
    import workflows.steps as steps
    import workflows.visibility as visibility
    from countersign import decision_proof
    from countersign.digest import args_digest
    from countersign.models import (
        AUDIT_QUERY,
        DECIDE_SIGNAL,
        DECIDE_UPDATE,
        RECORD_REFUSAL_SIGNAL,
        RUN_WORKFLOW,
        STATE_QUERY,
        WAIT_SETTLED_UPDATE,
        AuditEvent,
        AuditKind,
        CallRecord,
        CallState,
        ChatMessage,
        DecideRequest,
        DecideResult,
        DecisionSource,
        ErrorCode,
        JsonObject,
        ProposedCall,
        RefusedAttempt,
        RunInput,
        RunState,
        RunStatus,
        RunView,
        TimeoutAction,
        WebhookEvent,
    )
    from workflows.audit_trail import AuditTrail
    from workflows.decision_rules import RefusalError
    from workflows.webhook_queue import WebhookQueue, error_message

# workflow.patched id: a cancel_run expiry denies the rest of its batch.
CANCEL_DENIES_BATCH = "cancel-run-denies-pending-batch"
# workflow.patched id: a cancellation through Temporal is recorded as CANCELLED.
RECORD_OPERATOR_CANCEL = "record-operator-cancel"
# workflow.patched id: a call denied by a run cancellation ends CANCELLED, not EXPIRED.
CANCELLED_CALL_STATE = "cancelled-call-state"
# workflow.patched id: decide_signal is accepted only from the run's operator ids.
SIGNAL_NEEDS_OPERATOR = "decide-signal-needs-operator"
# workflow.patched id: a reused (or unusable) model call id gets the run's own id.
UNIQUE_CALL_IDS = "unique-call-ids"
# workflow.patched id: too many calls in a turn, or too large a state, end the run.
RUN_CAPS = "run-caps"
# workflow.patched id: a cancel through Temporal during a model turn is the cancel.
CANCEL_IN_MODEL_TURN = "cancel-in-model-turn"
# workflow.patched id: callers attached by update are answered so the run can continue as new.
RELEASE_WAITERS = "release-waiters-for-continue-as-new"


@workflow.defn(name=RUN_WORKFLOW)
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
        # Set once the run is about to continue as new: attached updates answer now.
        self._releasing = False
        self._trail = AuditTrail(self._state.audit, input.run_id)
        self._webhooks = WebhookQueue(input, self._state)

    # ----------------------------------------------------------------- run

    @workflow.run
    async def run(self, input: RunInput) -> RunView:
        """Run the model/tool loop until a final answer, an error or a cancel."""
        state = self._state
        if input.carried is None:
            self._trail.add(
                AuditKind.RUN_STARTED,
                workflow.now(),
                principal=input.requester,
                detail=input.message,
            )
        try:
            while state.status is RunStatus.RUNNING:
                # Only between turns with no webhook in flight (a receiver that
                # is down must not hold the run up), and once every attached
                # update has its answer from this run.
                if workflow.info().is_continue_as_new_suggested() and self._webhooks.idle:
                    await self._release_waiters()
                    if workflow.all_handlers_finished():
                        await self._webhooks.drain()
                        workflow.continue_as_new(input.model_copy(update={"carried": state}))
                # Checked first: the state travels in the continue-as-new input
                # and the next model turn's input.
                too_large = run_limits.state_too_large(state, input.options)
                if too_large is not None and workflow.patched(RUN_CAPS):
                    self._finish(RunStatus.ERROR, error=too_large)
                    break
                if state.turns >= input.options.max_turns:
                    self._finish(
                        RunStatus.ERROR,
                        error=f"the model kept calling tools: stopped after "
                        f"{input.options.max_turns} turns (max_turns)",
                    )
                    break
                state.turns += 1
                turn = await steps.model_turn(input, state)
                state.messages.append(steps.assistant_message(turn))
                if not turn.calls:
                    self._finish(RunStatus.COMPLETED, content=turn.content or "")
                    break
                too_many = run_limits.too_many_calls(len(turn.calls), input.options)
                if too_many is not None and workflow.patched(RUN_CAPS):
                    self._finish(RunStatus.ERROR, error=too_many)
                    break
                await self._handle_calls(state.turns, turn.calls)
                if self._cancel_reason is not None:
                    self._finish(RunStatus.CANCELLED, error=self._cancel_reason)
        except ActivityError as err:
            # A cancel through Temporal during a model turn cancels its activity,
            # which surfaces here, not as CancelledError: it is the operator's
            # cancel, not a failed turn. Patched: runs recorded before ended
            # ERROR and completed, and must replay as they ran.
            if (
                is_cancelled_exception(err)
                and workflow.cancellation_reason() is not None
                and workflow.patched(CANCEL_IN_MODEL_TURN)
            ):
                await self._cancelled_through_temporal()
                raise
            self._finish(RunStatus.ERROR, error=error_message(err))
        except asyncio.CancelledError:
            if not workflow.patched(RECORD_OPERATOR_CANCEL):
                raise
            await self._cancelled_through_temporal()
            raise
        # Decisions and waiters still in flight must see the final state.
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._webhooks.drain()
        return self._view()

    async def _release_waiters(self) -> None:
        """Answer the attached ``wait_settled`` and ``decide`` callers with the run as it is.

        They stay attached until the run settles, and a run driven through the
        API always has one between turns, so without this it never continued
        as new and its history grew without bound. A released caller reads a
        ``RUNNING`` view and attaches again to the next execution. Patched:
        runs recorded before went on with the callers attached, and must
        replay as they ran.
        """
        if workflow.all_handlers_finished() or not workflow.patched(RELEASE_WAITERS):
            return
        self._releasing = True
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _cancelled_through_temporal(self) -> None:
        """Record a cancel through Temporal (UI, CLI, API) as the run's end.

        What still waits is denied, and waiting callers see the outcome before
        the workflow closes cancelled.
        """
        self._cancel_reason = "run cancelled through Temporal"
        for record in self._state.pending:
            self._deny_on_cancel(record, {"run_cancelled": True})
        self._finish(RunStatus.CANCELLED, error=self._cancel_reason)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._webhooks.drain()

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
        self._state.messages.extend(steps.tool_message(record) for record in records)

    def _record_call(self, turn: int, call: ProposedCall) -> CallRecord:
        calls = self._state.calls
        own_id = run_limits.own_call_id(
            call.tool_call_id, {c.tool_call_id for c in calls}, len(calls)
        )
        # A reused id would make a later call undecidable and share an idempotency
        # key. Patched: runs recorded before kept the model's id.
        if own_id is not None and not workflow.patched(UNIQUE_CALL_IDS):
            own_id = None
        record = CallRecord(
            tool_call_id=own_id or call.tool_call_id,
            model_call_id=call.tool_call_id if own_id else None,
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
            decision_rules.await_confirmation(record, now)
            self._trail.approval_requested(record, now)
        self._state.status = RunStatus.PAUSED
        self._state.pause_count += 1
        self._settle()
        self._webhooks.push(
            WebhookEvent.APPROVAL_REQUESTED,
            {"tools": [r.view().model_dump(mode="json") for r in gated]},
        )

        def waiting() -> list[CallRecord]:
            return [r for r in gated if r.awaiting]

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
                    if decision_rules.due(record, now) or record.expires_at == next_expiry:
                        self._expire(record)
            else:
                self._describe_pause()
        self._trail.refusals_summarised(self._state.refusal_repeats, workflow.now())
        self._state.status = RunStatus.RUNNING
        self._publish()

    def _expire(self, record: CallRecord) -> None:
        assert record.policy is not None
        result = decision_rules.expire(record)
        data: JsonObject = {"on_timeout": record.policy.on_timeout.value}
        self._denied(record, AuditKind.APPROVAL_EXPIRED, result, data)
        self._cancel_reason = self._cancel_reason or decision_rules.run_cancelled_by(record)

    def _deny_on_cancel(self, record: CallRecord, data: JsonObject | None = None) -> None:
        assert self._cancel_reason is not None
        # Its own state, so readers tell "nobody decided in time" from "the run
        # was cancelled". Patched: runs recorded before CANCELLED existed
        # denied such calls as EXPIRED, and their replay must rebuild the same
        # state and audit chain.
        if workflow.patched(CANCELLED_CALL_STATE):
            state, kind = CallState.CANCELLED, AuditKind.APPROVAL_CANCELLED
        else:
            state, kind = CallState.EXPIRED, AuditKind.APPROVAL_EXPIRED
        result = decision_rules.cancel(record, self._cancel_reason, state=state)
        self._denied(
            record,
            kind,
            result,
            data or {"on_timeout": TimeoutAction.CANCEL_RUN.value, "run_cancelled": True},
        )

    def _denied(self, record: CallRecord, kind: AuditKind, result: str, data: JsonObject) -> None:
        """Record and push a waiting call that was denied without a decision."""
        self._trail.add(
            kind, workflow.now(), tool_call_id=record.tool_call_id, detail=result, data=data
        )
        self._webhooks.push(
            WebhookEvent.APPROVAL_EXPIRED, {"tool": record.view().model_dump(mode="json")}
        )

    # ----------------------------------------------------------- decisions

    @workflow.update(name=DECIDE_UPDATE)
    async def decide(self, request: DecideRequest) -> DecideResult:
        """Apply decisions atomically, then return the run once it settles again.

        When calls of the batch are still undecided the run stays paused and
        the result comes back at once; when the run continues as new first, it
        comes back ``RUNNING`` (see ``_release_waiters``).
        """
        # Validated again: updates accepted in the same workflow task run one
        # after the other, and the first may have decided what the second names.
        self._check(request)
        settled_before = self._state.settle_seq
        self._apply(request)
        applied = [d.tool_call_id for d in request.decisions]
        if self._state.status is RunStatus.PAUSED and self._state.pending:
            return DecideResult(applied=applied, run=self._settled_view())
        await workflow.wait_condition(lambda: self._answer_now(settled_before))
        return DecideResult(applied=applied, run=self._settled_view())

    @decide.validator
    def _validate_decide(self, request: DecideRequest) -> None:
        # Anything that reaches Temporal can send this update with any
        # principal: only the API's proof says that principal was authenticated
        # and allowed. Checked here, not in the handler: validators do not run
        # on replay, so the worker's key (never in history) may rotate freely.
        keys = decision_proof.verifier(workflow.info().task_queue)
        if keys is not None:
            problem = keys.problem(self._input.run_id, request, workflow.now())
            if problem is not None:
                raise RefusalError(ErrorCode.UNAUTHORISED_DECISION, problem)
        decision_rules.check_deadline(request, _validator_clock())
        decision_rules.check_scope(request, self._input, self._state.status, self._state.calls)
        self._check(request)

    @workflow.signal(name=DECIDE_SIGNAL)
    def decide_signal(self, request: DecideRequest) -> None:
        """Same payload as ``decide``, for operators deciding from the CLI or UI.

        A signal cannot be refused, so an invalid one is recorded in the audit
        trail as a refused attempt and changes nothing else.
        """
        request = request.model_copy(update={"source": DecisionSource.SIGNAL})
        try:
            # A signal carries no proof: only the operators named when the run
            # started may decide this way. Patched: runs recorded before took
            # any signal's principal, and must replay as they ran.
            if workflow.patched(SIGNAL_NEEDS_OPERATOR):
                decision_rules.check_operator(request.principal, self._input.operator_ids)
            self._check(request)
        except RefusalError as err:
            self._record_refusal(
                RefusedAttempt(
                    principal=request.principal,
                    source=DecisionSource.SIGNAL,
                    tool_call_ids=[d.tool_call_id for d in request.decisions],
                    code=err.code.value,
                    reason=err.message,
                )
            )
            return
        self._apply(request)

    @workflow.signal(name=RECORD_REFUSAL_SIGNAL)
    def record_refused_attempt(self, attempt: RefusedAttempt) -> None:
        """Record a decision the API refused, so the audit trail shows it."""
        self._record_refusal(attempt)

    @workflow.update(name=WAIT_SETTLED_UPDATE)
    async def wait_settled(self, after_seq: int) -> RunView:
        """The run once it settles (pauses or ends) after ``after_seq``, without its messages.

        ``RUNNING`` when the run continues as new first: wait on the next execution.
        """
        await workflow.wait_condition(lambda: self._answer_now(after_seq))
        return self._settled_view()

    @wait_settled.validator
    def _validate_wait_settled(self, after_seq: int) -> None:
        decision_rules.check_wait(after_seq, self._state.settle_seq)

    def _settled_after(self, seq: int) -> bool:
        # A run that ended releases every waiter, whatever it waits for.
        return self._state.settle_seq > seq or self._state.status.is_final

    def _answer_now(self, seq: int) -> bool:
        # Settled, or about to continue as new: an attached update must not
        # outlive this execution.
        return self._settled_after(seq) or self._releasing

    @workflow.query(name=STATE_QUERY)
    def state(self) -> RunView:
        """The whole run view."""
        return self._view()

    @workflow.query(name=AUDIT_QUERY)
    def audit(self) -> list[AuditEvent]:
        """The run's audit trail, oldest first."""
        return self._state.audit

    def _check(self, request: DecideRequest) -> None:
        decision_rules.check(request, self._state.calls, self._input.requester, workflow.now())

    def _apply(self, request: DecideRequest) -> None:
        now = workflow.now()
        for item in request.decisions:
            record = decision_rules.find(self._state.calls, item.tool_call_id)
            assert record is not None and record.policy is not None
            decision = decision_rules.apply(item, record, request.principal, request.source, now)
            self._trail.decision_recorded(record, decision, now, request.minted_by)
            self._webhooks.push(
                WebhookEvent.APPROVAL_DECIDED,
                {
                    "tool": record.view().model_dump(mode="json"),
                    "decision": decision.model_dump(mode="json"),
                },
            )
        self._describe_pause()

    def _record_refusal(self, attempt: RefusedAttempt) -> None:
        # Bounded: the first refusal per principal and code is recorded in full,
        # the rest are counted and summarised when the pause (or run) ends, so
        # repeated refusals cannot grow the state. No patch: no command changes,
        # and a first refusal reads as it did before.
        if self._trail.refusal_counted(self._state.refusal_repeats, attempt):
            self._trail.refused(attempt, workflow.now())

    # ------------------------------------------------------------ execution

    async def _execute(self, record: CallRecord) -> None:
        await steps.execute_tool(self._input, record)
        self._trail.tool_finished(record, workflow.now())

    # ------------------------------------------------------------- helpers

    def _finish(
        self, status: RunStatus, *, content: str | None = None, error: str | None = None
    ) -> None:
        self._state.status = status
        self._state.content = content if content is not None else error
        self._state.error = error
        self._trail.refusals_summarised(self._state.refusal_repeats, workflow.now())
        self._trail.run_finished(status, error, workflow.now())
        self._settle()
        self._webhooks.push(
            WebhookEvent.RUN_COMPLETED,
            {"status": status.value, "content": self._state.content, "error": error},
        )

    def _settle(self) -> None:
        """Mark a point where callers waiting for the run get an answer."""
        self._state.settle_seq += 1
        self._publish()
        self._describe_pause()

    def _publish(self) -> None:
        self._state.updated_at = workflow.now()
        workflow.upsert_search_attributes(visibility.search_attribute_updates(self._state))

    def _describe_pause(self) -> None:
        workflow.set_current_details(visibility.current_details(self._state))

    def _view(self) -> RunView:
        return RunView.of(self._input, self._state)

    def _settled_view(self) -> RunView:
        # The answer of an update is written to history and crosses the SDK
        # twice; its callers answer with the status and the calls, never the
        # conversation, which the state query and the run's result still carry.
        return self._view().model_copy(update={"messages": []})


def _validator_clock() -> datetime:
    """The worker's clock, for validators only (they do not run on replay).

    ``workflow.now()`` is when the task started, which after a restart can be
    a whole replay before the validator runs: too early to tell a decision
    whose sender has given up.
    """
    with workflow.unsafe.sandbox_unrestricted():
        return datetime.now(UTC)
