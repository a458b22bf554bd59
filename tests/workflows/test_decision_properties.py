"""Property tests of the decision rules: no sequence of events breaks the guarantees.

A small model of one paused batch drives the pure rules the way the workflow
does: decisions from any principal (checked, then applied all or nothing),
time passing with TTL expiries, a run cancellation, and the execution of the
approved calls once nothing awaits. Whatever Hypothesis generates, a call
executes at most once, only after enough distinct eligible approvals all given
before its deadline, only with the arguments shown (or an allowed edit), and a
refused request changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from countersign.digest import args_digest
from countersign.models import (
    CallRecord,
    CallState,
    ConfirmationPolicy,
    DecideRequest,
    DecisionInput,
    DecisionSource,
    JsonObject,
    Principal,
)
from workflows import decision_rules as rules
from workflows.decision_rules import RefusalError

START = datetime(2026, 1, 1, tzinfo=UTC)
REQUESTER = Principal(id="rita", roles=("approver",))
PRINCIPALS = [
    REQUESTER,
    Principal(id="alice", roles=("approver",)),
    Principal(id="bob", roles=("approver",)),
    Principal(id="ada", roles=("admin",)),
    Principal(id="vic", roles=("viewer",)),
]


def _eligible(principal: Principal, policy: ConfirmationPolicy) -> bool:
    if policy.approver_roles and not principal.has_any_role(policy.approver_roles):
        return False
    return policy.allow_self_approval or principal.id != REQUESTER.id


policies = st.builds(
    ConfirmationPolicy,
    approver_roles=st.sampled_from([[], ["approver"]]),
    approvals_required=st.sampled_from([1, 2, 2, 3]),
    allow_self_approval=st.booleans(),
    ttl=st.integers(5, 100).map(lambda s: timedelta(seconds=s)),
    allow_edit=st.booleans(),
)

# What an approver echoes: nothing, the call's digest, a wrong one, the shown
# arguments, or edited arguments.
UNKNOWN = 9  # a call index that names no call of the batch
ECHOES = ["none", "digest", "wrong_digest", "same_args", "edit"]

decision_items = st.tuples(
    st.sampled_from([0, 1, 2, 0, 1, 2, UNKNOWN]),  # which call of the batch
    st.sampled_from([True, True, True, False]),  # mostly approvals
    st.sampled_from(["none", "none", "none", *ECHOES]),
    st.integers(0, 9),  # the count an edit asks for
)
decide_events = st.tuples(
    st.just("decide"),
    st.sampled_from(PRINCIPALS),
    st.lists(decision_items, min_size=1, max_size=2),
)
# Time passes without the TTL timer firing yet (a decision may arrive in that
# window), then the timer fires for every call that is due.
wait_events = st.tuples(st.just("wait"), st.integers(0, 3) | st.integers(0, 60))
# Mostly decisions: a cancel ends the story, and long waits expire everything.
events = st.sampled_from(["decide"] * 12 + ["wait"] * 2 + ["timer", "cancel"]).flatmap(
    lambda kind: {"decide": decide_events, "wait": wait_events}.get(kind, st.just((kind,)))
)


@dataclass
class Batch:
    """One paused batch and what happened to it."""

    calls: list[CallRecord]
    now: datetime = START
    cancelled: bool = False
    # Per call: the digest of the arguments each accepted approval was for.
    approved_for: dict[str, list[str]] = field(default_factory=dict)
    executed: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)

    def waiting(self) -> list[CallRecord]:
        return [c for c in self.calls if c.awaiting]

    def decide(self, principal: Principal, items: list[DecisionInput]) -> None:
        """Check, then apply all or nothing, as the ``decide`` update does."""
        request = DecideRequest(decisions=items, principal=principal)
        before = [c.model_copy(deep=True) for c in self.calls]
        try:
            rules.check(request, self.calls, REQUESTER, self.now)
        except RefusalError:
            assert self.calls == before, "a refused request changed a call"
            return
        for item in items:
            record = rules.find(self.calls, item.tool_call_id)
            assert record is not None
            if item.confirmed:
                self.approved_for.setdefault(record.tool_call_id, []).append(
                    _digest_seen(item, record)
                )
            rules.apply(item, record, principal, DecisionSource.API, self.now)

    def settle(self) -> None:
        """Execute the approved calls once nothing awaits, as the workflow does."""
        if self.waiting() or self.cancelled:
            return
        for call in self.calls:
            if call.state is CallState.APPROVED:
                call.state = CallState.EXECUTED
                self.executed.setdefault(call.tool_call_id, []).append(
                    (self.now, args_digest(call.tool_args))
                )


def _digest_seen(item: DecisionInput, record: CallRecord) -> str:
    """The arguments an approval is for: its echo, its edit, or what the call shows."""
    if item.tool_args is not None:
        return args_digest(item.tool_args)
    return item.args_digest or record.args_digest


def _item(batch: Batch, raw: tuple[int, bool, str, int]) -> DecisionInput:
    index, confirmed, echo, count = raw
    call = batch.calls[index % len(batch.calls)] if index < UNKNOWN else None
    call_id = call.tool_call_id if call else "unknown"
    shown: JsonObject = dict(call.tool_args) if call else {}
    extra: dict[str, object] = {}
    if echo == "digest":
        extra["args_digest"] = call.args_digest if call else ""
    elif echo == "wrong_digest":
        extra["args_digest"] = "0" * 64
    elif echo == "same_args":
        extra["tool_args"] = shown
    elif echo == "edit":
        extra["tool_args"] = {**shown, "count": count}
    return DecisionInput(tool_call_id=call_id, confirmed=confirmed, **extra)


def _original(call: CallRecord) -> str:
    """The digest of the arguments the model proposed for ``call``."""
    return args_digest({"table_name": f"t{call.tool_call_id.removeprefix('call_')}", "count": 5})


def _gated_call(n: int, policy: ConfirmationPolicy) -> CallRecord:
    args: JsonObject = {"table_name": f"t{n}", "count": 5}
    call = CallRecord(
        tool_call_id=f"call_{n}",
        tool_name="delete_records",
        tool_args=args,
        turn=1,
        args_digest=args_digest(args),
        policy=policy,
    )
    rules.await_confirmation(call, START)
    return call


@settings(max_examples=400, deadline=None, database=None)
# Hard to reach at random: one approver of two edits, the other approves.
@example(
    [ConfirmationPolicy(approvals_required=2, allow_edit=True)],
    [
        ("decide", PRINCIPALS[1], [(0, True, "edit", 1)]),
        ("decide", PRINCIPALS[2], [(0, True, "none", 0)]),
    ],
)
@given(st.lists(policies, min_size=1, max_size=3), st.lists(events, min_size=4, max_size=30))
def test_no_sequence_of_events_breaks_the_guarantees(
    batch_policies: list[ConfirmationPolicy], script: list[tuple[object, ...]]
) -> None:
    batch = Batch([_gated_call(n, policy) for n, policy in enumerate(batch_policies)])

    for event in script:
        if event[0] == "decide":
            principal, raw_items = event[1], event[2]
            assert isinstance(principal, Principal) and isinstance(raw_items, list)
            batch.decide(principal, [_item(batch, raw) for raw in raw_items])
        elif event[0] == "wait":
            assert isinstance(event[1], int)
            batch.now += timedelta(seconds=event[1])
        elif event[0] == "timer":
            for call in batch.waiting():
                if rules.due(call, batch.now):
                    rules.expire(call)
        else:
            batch.cancelled = True
            for call in batch.waiting():
                rules.cancel(call, "run cancelled")
        batch.settle()

    for call in batch.calls:
        runs = batch.executed.get(call.tool_call_id, [])
        assert len(runs) <= 1, f"{call.tool_call_id} executed {len(runs)} times"
        assert not call.decisions or all(
            d.decided_at < (call.expires_at or START) for d in call.decisions
        ), "decided at or after its deadline"
        if call.state not in (CallState.APPROVED, CallState.EXECUTED):
            assert not runs, f"{call.tool_call_id} ran while {call.state.value}"
            continue
        # Approved calls run once the batch settles: they must meet every rule.
        executed_digest = args_digest(call.tool_args)
        assert [digest for _, digest in runs] in ([], [executed_digest])
        rule = call.policy
        assert rule is not None
        approvals = call.approvals
        approvers = {d.principal.id for d in approvals}
        assert len(approvers) == len(approvals), "one principal counted twice"
        assert len(approvers) >= rule.approvals_required, "executed short of approvals"
        assert all(_eligible(d.principal, rule) for d in approvals), "an ineligible approver"
        assert all(d.confirmed for d in call.decisions), "executed after a rejection"
        if executed_digest != call.args_digest or executed_digest != _original(call):
            assert rule.allow_edit and rule.approvals_required == 1, "an edit not allowed"
        # Every approval was for exactly the arguments that ran.
        assert set(batch.approved_for[call.tool_call_id]) == {executed_digest}, (
            "executed with arguments an approver did not approve"
        )
