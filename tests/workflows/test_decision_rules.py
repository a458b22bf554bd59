"""The pure decision rules: every refusal code and every transition, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from countersign import access
from countersign.digest import args_digest
from countersign.models import (
    CallRecord,
    CallState,
    ConfirmationPolicy,
    DecideRequest,
    Decision,
    DecisionInput,
    DecisionScope,
    DecisionSource,
    ErrorCode,
    JsonObject,
    Principal,
    RunInput,
    RunStatus,
    TimeoutAction,
)
from workflows import decision_rules as rules
from workflows.decision_rules import RefusalError

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(hours=1)
REQUESTER = Principal(id="rita", roles=("requester", "approver"))
ALICE = Principal(id="alice", roles=("approver",))
BOB = Principal(id="bob", roles=("approver",))
NOBODY = Principal(id="nobody", roles=("viewer",))
ARGS: JsonObject = {"table_name": "users", "count": 5}


def gated(
    call_id: str = "c1",
    *,
    state: CallState = CallState.AWAITING_CONFIRMATION,
    **policy: object,
) -> CallRecord:
    """A gated call, awaiting confirmation since NOW unless ``state`` says otherwise."""
    record = CallRecord(
        tool_call_id=call_id,
        tool_name="delete_records",
        tool_args=dict(ARGS),
        turn=1,
        args_digest=args_digest(ARGS),
        policy=ConfirmationPolicy(
            approver_roles=["approver"],
            ttl=TTL,
            **policy,
        ),
    )
    if state is not CallState.PENDING:
        rules.await_confirmation(record, NOW)
        record.state = state
    return record


def ungated(call_id: str = "u1", state: CallState = CallState.EXECUTED) -> CallRecord:
    return CallRecord(
        tool_call_id=call_id,
        tool_name="list_tables",
        tool_args={},
        turn=1,
        args_digest=args_digest({}),
        state=state,
    )


def decide(*decisions: DecisionInput, principal: Principal = ALICE) -> DecideRequest:
    return DecideRequest(decisions=list(decisions), principal=principal)


def yes(call_id: str = "c1", **echo: object) -> DecisionInput:
    return DecisionInput(tool_call_id=call_id, confirmed=True, **echo)


def no(call_id: str = "c1", note: str | None = None) -> DecisionInput:
    return DecisionInput(tool_call_id=call_id, confirmed=False, note=note)


def refused(request: DecideRequest, calls: list[CallRecord], now: datetime = NOW) -> ErrorCode:
    """Check ``request`` and return the refusal's code; the calls must not change."""
    before = [c.model_copy(deep=True) for c in calls]
    with pytest.raises(RefusalError) as raised:
        rules.check(request, calls, REQUESTER, now)
    assert calls == before, "a refused check changed a call"
    err = raised.value
    assert err.type == err.code.value and err.non_retryable
    return err.code


# --------------------------------------------------------------- refusals


def test_empty_request_is_refused() -> None:
    assert refused(decide(), [gated()]) is ErrorCode.EMPTY_DECISION


def test_call_named_twice_is_refused() -> None:
    assert refused(decide(yes(), no()), [gated()]) is ErrorCode.DUPLICATE_CALL


def test_unknown_call_is_refused_even_next_to_a_good_one() -> None:
    assert refused(decide(yes(), yes("nope")), [gated()]) is ErrorCode.UNKNOWN_CALL


def test_expired_call_is_refused() -> None:
    assert refused(decide(yes()), [gated(state=CallState.EXPIRED)]) is ErrorCode.EXPIRED


@pytest.mark.parametrize("late", [timedelta(0), timedelta(seconds=1)])
def test_decision_at_or_after_the_deadline_is_refused_before_the_timer_fires(
    late: timedelta,
) -> None:
    call = gated()
    assert call.expires_at == NOW + TTL
    assert refused(decide(yes()), [call], now=NOW + TTL + late) is ErrorCode.EXPIRED
    assert call.awaiting


def test_call_denied_by_a_cancelled_run_is_refused() -> None:
    assert refused(decide(yes()), [gated(state=CallState.CANCELLED)]) is ErrorCode.CALL_CANCELLED


@pytest.mark.parametrize(
    "call",
    [
        ungated(),
        ungated(state=CallState.INVALID),
        gated(state=CallState.PENDING),
    ],
    ids=["ungated", "invalid", "not-yet-paused"],
)
def test_call_that_does_not_await_confirmation_is_refused(call: CallRecord) -> None:
    assert refused(decide(yes(call.tool_call_id)), [call]) is ErrorCode.NOT_AWAITING


@pytest.mark.parametrize(
    "state",
    [
        CallState.APPROVED,
        CallState.REJECTED,
        CallState.EXECUTING,
        CallState.EXECUTED,
        CallState.FAILED,
    ],
)
def test_call_already_decided_is_refused(state: CallState) -> None:
    assert refused(decide(no()), [gated(state=state)]) is ErrorCode.ALREADY_DECIDED


def test_wrong_tool_name_is_refused() -> None:
    assert refused(decide(yes(tool_name="drop_table")), [gated()]) is ErrorCode.TOOL_MISMATCH


def test_wrong_args_digest_is_refused() -> None:
    assert refused(decide(yes(args_digest="0" * 64)), [gated()]) is ErrorCode.ARGS_MISMATCH


def test_edit_of_a_tool_that_allows_none_is_refused() -> None:
    edit = yes(tool_args={**ARGS, "count": 500})
    assert refused(decide(edit), [gated()]) is ErrorCode.ARGS_MISMATCH


def test_edit_under_four_eyes_is_refused() -> None:
    edit = yes(tool_args={**ARGS, "count": 1})
    call = gated(allow_edit=True, approvals_required=2)
    assert refused(decide(edit), [call]) is ErrorCode.ARGS_MISMATCH


def test_principal_without_an_approver_role_is_refused() -> None:
    assert refused(decide(no(), principal=NOBODY), [gated()]) is ErrorCode.FORBIDDEN_ROLE


def test_admin_role_stands_for_any_approver_role() -> None:
    rules.check(
        decide(yes(), principal=Principal(id="ada", roles=("admin",))), [gated()], REQUESTER, NOW
    )


def test_requester_approving_own_call_is_refused_when_the_policy_says_so() -> None:
    call = gated(allow_self_approval=False)
    assert refused(decide(yes(), principal=REQUESTER), [call]) is ErrorCode.SELF_APPROVAL
    # Rejecting one's own request is always allowed.
    rules.check(decide(no(), principal=REQUESTER), [call], REQUESTER, NOW)


def test_second_approval_by_the_same_principal_is_refused() -> None:
    call = gated(approvals_required=2)
    rules.apply(yes(), call, ALICE, DecisionSource.API, NOW)
    assert refused(decide(yes()), [call]) is ErrorCode.ALREADY_APPROVED_BY
    rules.check(decide(yes(), principal=BOB), [call], REQUESTER, NOW)


def test_all_or_nothing_a_request_is_refused_for_its_first_bad_decision() -> None:
    calls = [gated("c1"), gated("c2", state=CallState.REJECTED)]
    assert refused(decide(yes("c1"), yes("c2")), calls) is ErrorCode.ALREADY_DECIDED


def test_matching_echoes_are_accepted() -> None:
    echo = yes(tool_name="delete_records", args_digest=args_digest(ARGS), tool_args=dict(ARGS))
    rules.check(decide(echo), [gated()], REQUESTER, NOW)


# ------------------------------------------------------------ transitions


def test_pause_sets_the_deadline() -> None:
    call = gated(state=CallState.PENDING)
    rules.await_confirmation(call, NOW)
    assert call.state is CallState.AWAITING_CONFIRMATION and call.awaiting
    assert call.expires_at == NOW + TTL
    assert not rules.due(call, NOW + TTL - timedelta(microseconds=1))
    assert rules.due(call, NOW + TTL)


def test_rejection_ends_the_call_with_the_note() -> None:
    call = gated()
    decision = rules.apply(no(note="too many"), call, ALICE, DecisionSource.SIGNAL, NOW)
    assert call.state is CallState.REJECTED
    assert call.result == "rejected by alice: too many"
    assert decision == Decision(
        principal=ALICE,
        confirmed=False,
        note="too many",
        source=DecisionSource.SIGNAL,
        decided_at=NOW,
    )
    assert call.decisions == [decision]
    view = call.view()
    assert (view.confirmed, view.confirmation_note) == (False, "too many")


def test_single_approval_approves() -> None:
    call = gated()
    rules.apply(yes(), call, ALICE, DecisionSource.API, NOW)
    assert call.state is CallState.APPROVED
    assert call.tool_args == ARGS and call.result is None
    assert call.view().confirmed is True


def test_four_eyes_needs_two_distinct_approvals() -> None:
    call = gated(approvals_required=2)
    rules.apply(yes(), call, ALICE, DecisionSource.API, NOW)
    assert call.awaiting, "one approval of two must leave the call waiting"
    assert call.view().confirmed is None
    rules.apply(yes(), call, BOB, DecisionSource.API, NOW)
    assert call.state is CallState.APPROVED
    assert [d.principal.id for d in call.approvals] == ["alice", "bob"]


def test_rejection_after_one_of_two_approvals_rejects() -> None:
    call = gated(approvals_required=2)
    rules.apply(yes(), call, ALICE, DecisionSource.API, NOW)
    rules.apply(no(), call, BOB, DecisionSource.API, NOW)
    assert call.state is CallState.REJECTED


def test_approved_edit_replaces_the_arguments_and_their_digest() -> None:
    call = gated(allow_edit=True)
    edited: JsonObject = {**ARGS, "count": 1}
    decision = rules.apply(yes(tool_args=edited), call, ALICE, DecisionSource.API, NOW)
    assert call.state is CallState.APPROVED
    assert call.tool_args == edited and call.args_digest == args_digest(edited)
    assert decision.edited_args == edited


def test_echo_of_the_same_arguments_is_not_an_edit() -> None:
    call = gated()
    decision = rules.apply(yes(tool_args=dict(ARGS)), call, ALICE, DecisionSource.API, NOW)
    assert decision.edited_args is None and call.args_digest == args_digest(ARGS)


def test_rejection_never_edits() -> None:
    call = gated(allow_edit=True)
    item = DecisionInput(tool_call_id="c1", confirmed=False, tool_args={"count": 1})
    decision = rules.apply(item, call, ALICE, DecisionSource.API, NOW)
    assert decision.edited_args is None and call.tool_args == ARGS


def test_expiry_denies() -> None:
    call = gated()
    result = rules.expire(call)
    assert call.state is CallState.EXPIRED
    assert result == call.result == f"denied: confirmation expired at {(NOW + TTL).isoformat()}"
    view = call.view()
    assert (view.confirmed, view.tool_call_error) == (False, False)


def test_cancel_denies_with_its_own_state() -> None:
    call = gated()
    result = rules.cancel(call, "run cancelled through Temporal")
    assert call.state is CallState.CANCELLED and not call.awaiting
    assert result == call.result == "denied: run cancelled through Temporal"
    view = call.view()
    assert (view.confirmed, view.tool_call_error) == (False, False)


def test_cancel_can_replay_as_expired_for_runs_recorded_before_cancelled_existed() -> None:
    call = gated()
    rules.cancel(call, "run cancelled through Temporal", state=CallState.EXPIRED)
    assert call.state is CallState.EXPIRED


def test_expiry_of_a_cancel_run_call_names_the_run_cancellation() -> None:
    call = gated(on_timeout=TimeoutAction.CANCEL_RUN)
    assert rules.run_cancelled_by(call) is None, "a waiting call cancels nothing"
    rules.expire(call)
    reason = rules.run_cancelled_by(call)
    assert reason is not None
    assert reason.startswith("run cancelled: confirmation of delete_records (c1) expired at ")
    plain = gated()
    rules.expire(plain)
    assert rules.run_cancelled_by(plain) is None


def test_a_wait_beyond_the_runs_settles_is_refused() -> None:
    rules.check_wait(3, 3)
    rules.check_wait(0, 3)
    with pytest.raises(RefusalError) as raised:
        rules.check_wait(4, 3)
    assert raised.value.code is ErrorCode.SEQ_AHEAD


def test_only_the_runs_operators_may_decide_by_signal() -> None:
    rules.check_operator(ALICE, ["alice", "bob"])
    with pytest.raises(RefusalError) as raised:
        rules.check_operator(NOBODY, ["alice", "bob"])
    assert raised.value.code is ErrorCode.UNAUTHORISED_DECISION


# ----------------------------------------- decisions sent without a read


RUN = RunInput(
    run_id="r1", agent_id="data_manager", message="m", session_id="s1", requester=REQUESTER
)
OWNER = Principal(id="rita", roles=("requester",))
STRANGER = Principal(id="sam", roles=("requester",))


def scoped(
    *decisions: DecisionInput,
    principal: Principal = ALICE,
    agent_id: str = "data_manager",
    session_id: str | None = None,
) -> DecideRequest:
    return DecideRequest(
        decisions=list(decisions) or [yes()],
        principal=principal,
        scope=DecisionScope(agent_id=agent_id, session_id=session_id),
    )


def scope_refused(
    request: DecideRequest, calls: list[CallRecord], status: RunStatus = RunStatus.PAUSED
) -> ErrorCode:
    with pytest.raises(RefusalError) as raised:
        rules.check_scope(request, RUN, status, calls)
    return raised.value.code


@pytest.mark.parametrize(
    ("request_", "calls", "code"),
    [
        # Another agent's run reads as a run that does not exist.
        (scoped(agent_id="other_agent"), [gated()], ErrorCode.UNKNOWN_RUN),
        # A requester who did not start the run may not see it.
        (scoped(principal=STRANGER), [gated()], ErrorCode.UNKNOWN_RUN),
        # An approver sees only runs with a gated call.
        (scoped(yes("u1")), [ungated()], ErrorCode.UNKNOWN_RUN),
        # A viewer sees every run and decides none.
        (scoped(principal=NOBODY), [gated()], ErrorCode.FORBIDDEN),
        (scoped(session_id="s2"), [gated()], ErrorCode.SESSION_MISMATCH),
        # Edits are checked against the tool's schema on the path that reads the run.
        (
            scoped(yes(tool_args={"table_name": "users", "count": 6})),
            [gated()],
            ErrorCode.INVALID_ARGS,
        ),
    ],
)
def test_decisions_sent_without_a_read_are_refused_as_the_read_would(
    request_: DecideRequest, calls: list[CallRecord], code: ErrorCode
) -> None:
    assert scope_refused(request_, calls) == code
    assert code in access.READ_FIRST


def test_decisions_sent_without_a_read_need_a_paused_run() -> None:
    assert scope_refused(scoped(), [gated()], RunStatus.RUNNING) == ErrorCode.NOT_PAUSED


@pytest.mark.parametrize(
    "request_",
    [
        scoped(),
        scoped(principal=OWNER, session_id="s1"),
        scoped(yes(tool_args=dict(ARGS))),  # the arguments echoed, not edited
        decide(yes(), principal=STRANGER),  # no scope: the API read the run and checked it
    ],
)
def test_decisions_the_read_would_allow_pass_the_scope_check(request_: DecideRequest) -> None:
    rules.check_scope(request_, RUN, RunStatus.PAUSED, [gated()])


def test_decisions_after_their_deadline_are_refused() -> None:
    request = decide(yes()).model_copy(update={"not_after": NOW})
    rules.check_deadline(request, NOW)
    with pytest.raises(RefusalError) as raised:
        rules.check_deadline(request, NOW + timedelta(microseconds=1))
    assert raised.value.code is ErrorCode.TOO_LATE
    rules.check_deadline(decide(yes()), NOW + timedelta(days=365))
