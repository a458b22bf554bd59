"""A run of many turns and calls stays within Temporal's limits: continue-as-new carries it.

The dev server here suggests continue-as-new after ``SUGGEST_AT`` events
(Temporal's default is thousands; a small value makes a 60-turn run cross it
several times in seconds). The run mixes an ungated call every turn with a
gated one every ``GATED_EVERY`` turns. One test approves them by an operator's
signal; the other drives the run as the API does (``wait_settled`` at the
start, a ``decide`` update per pause, each caller attached until the run
settles), where continuing as new needs the run to answer its attached callers
first. Each test walks the chain of executions and checks that each one
stayed near the threshold (the run continues as new between turns, so one
turn's worth of events is the most it overshoots), that nothing was lost or
done twice across the hand-overs, and prints the events and bytes per turn
(``docs/reliability.md``, "Long runs", has the figures and the command).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from countersign.client import RunClient, build_run_input, workflow_id
from countersign.digest import first_broken_link
from countersign.models import (
    DECIDE_SIGNAL,
    RUN_WORKFLOW,
    CallState,
    DecideRequest,
    DecisionInput,
    Principal,
    RunStatus,
    RunView,
)
from tests.agents_for_tests import AGENT_ID
from tests.api.conftest import eventually
from tests.conftest import make_settings, start_dev_server
from tests.histories.record import run_chain
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.workflows.helpers import TEST_AGENT_MODULES, running_worker

SUGGEST_AT = 200
TURNS = 60
GATED_EVERY = 15
#: Temporal refuses to grow a history past these (its defaults for errors).
TEMPORAL_MAX_EVENTS = 51_200
TEMPORAL_MAX_BYTES = 50 * 1024 * 1024
#: Most events one turn adds: a model turn, its calls, a pause and its decision.
ONE_TURN_EVENTS = 40


@pytest.fixture(scope="module")
async def suggesting_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that suggests continue-as-new after ``SUGGEST_AT`` events."""
    async with await start_dev_server(suggest_continue_as_new_at=SUGGEST_AT) as environment:
        yield environment


@dataclass
class Execution:
    """One execution of the run's chain, measured from its history."""

    events: int
    size: int
    turns: int

    @property
    def per_turn(self) -> tuple[float, float]:
        """Events and bytes per model turn."""
        return self.events / max(self.turns, 1), self.size / max(self.turns, 1)


def measure(history: WorkflowHistory) -> Execution:
    """Events, bytes (serialized protobuf) and model turns of one execution."""
    turns = sum(
        1
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "model_turn"
    )
    return Execution(len(history.events), sum(e.ByteSize() for e in history.events), turns)


async def chain(client: Client, run_id: str, first_run: str) -> list[Execution]:
    """Every execution of the run, first to last, following continue-as-new."""
    return [measure(h) for h in await run_chain(client, workflow_id(run_id), first_run)]


def report(title: str, executions: list[Execution]) -> None:
    """Print the events and bytes per turn of each execution (run with ``-s``)."""
    print(f"\n{title}, continue-as-new suggested at {SUGGEST_AT} events")
    print("execution  events  bytes    turns  events/turn  bytes/turn")
    for n, ex in enumerate(executions, 1):
        events_per_turn, bytes_per_turn = ex.per_turn
        print(
            f"{n:>9}  {ex.events:>6}  {ex.size:>7}  {ex.turns:>5}"
            f"  {events_per_turn:>11.1f}  {bytes_per_turn:>10.0f}"
        )
    total = Execution(
        sum(e.events for e in executions),
        sum(e.size for e in executions),
        sum(e.turns for e in executions),
    )
    print(f"    total  {total.events:>6}  {total.size:>7}  {total.turns:>5}")


async def settled(client: Client, run_id: str) -> RunView:
    """The run once it is paused or over (polled: an update would hold continue-as-new)."""
    return await eventually(
        lambda: RunClient.of(client, run_id).view(),
        lambda v: v.status is RunStatus.PAUSED or v.status.is_final,
        within=60,
    )


def script(message: str, turns: int = TURNS) -> list[Reply]:
    """``turns`` turns of calls: a count every turn, a gated delete every ``GATED_EVERY``."""
    replies = []
    for turn in range(1, turns + 1):
        calls = [Call("count_rows", {"table_name": "orders"})]
        if turn % GATED_EVERY == 0:
            calls.append(Call("weekly_delete", {"table_name": "orders", "count": turn}))
        replies.append(Reply(calls=calls))
    return replies


# 61 model turns and a dev server of its own: about 25 s alone, several times
# that on a loaded machine, past the suite's default 180 s.
@pytest.mark.timeout(480)
async def test_long_run_continues_as_new_within_limits(
    suggesting_env: WorkflowEnvironment, model: ScriptedModel, tmp_path: Path
) -> None:
    client = suggesting_env.client
    message = f"Keep counting the orders ({uuid.uuid4().hex[:8]})"
    model.script(message, *script(message))
    settings = make_settings(
        model,
        tmp_path,
        f"tq-{uuid.uuid4()}",
        agent_modules=TEST_AGENT_MODULES,
        max_turns=TURNS + 1,
        operator_ids=["ops-bob"],
    )
    run = build_run_input(
        settings, agent_id=AGENT_ID, message=message, requester=Principal(id="rita")
    )
    operator = Principal(id="ops-bob", roles=("approver",))
    async with running_worker(client, settings) as worker:
        # Started and decided the way an operator does (no update handler stays
        # attached between turns): the run continues as new whenever suggested.
        handle = await client.start_workflow(
            RUN_WORKFLOW,
            run,
            id=workflow_id(run.run_id),
            task_queue=settings.temporal_task_queue,
            result_type=RunView,
        )
        first_run = handle.first_execution_run_id or handle.result_run_id
        assert first_run is not None
        pauses = 0
        while (view := await settled(client, run.run_id)).status is RunStatus.PAUSED:
            pauses += 1
            await client.get_workflow_handle(workflow_id(run.run_id)).signal(
                DECIDE_SIGNAL,
                DecideRequest(
                    decisions=[
                        DecisionInput(tool_call_id=c.tool_call_id, confirmed=True)
                        for c in view.pending
                    ],
                    principal=operator,
                ),
            )

            def moved_on(v: RunView, seen: int = view.pause_count) -> bool:
                return v.pause_count > seen or v.status.is_final

            await eventually(lambda: RunClient.of(client, run.run_id).view(), moved_on, within=60)
        trail = await RunClient.of(client, run.run_id).audit()
        executions = await chain(client, run.run_id, first_run)
        deletes = worker.db.effect_count("delete_records")

    report(f"long run: {TURNS} turns, decided by signal", executions)
    total_events = sum(e.events for e in executions)

    gated = TURNS // GATED_EVERY
    assert view.status is RunStatus.COMPLETED, view.error
    assert view.turns == TURNS + 1
    assert pauses == gated
    assert [t.state for t in view.tools] == [CallState.EXECUTED] * (TURNS + gated)
    assert deletes == gated
    assert first_broken_link(trail) is None
    assert [e.kind.value for e in trail].count("tool.executed") == TURNS + gated
    assert len(executions) >= total_events // SUGGEST_AT
    assert sum(e.turns for e in executions) == TURNS + 1
    for ex in executions:
        assert ex.events <= SUGGEST_AT + ONE_TURN_EVENTS, executions
        assert ex.events < TEMPORAL_MAX_EVENTS
        assert ex.size < TEMPORAL_MAX_BYTES


def update_events(history: WorkflowHistory) -> tuple[int, int]:
    """Updates accepted and completed in one execution."""
    kinds = [e.event_type for e in history.events]
    return (
        kinds.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED),
        kinds.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED),
    )


#: Turns of the run driven through updates: the same run as the signal-driven one.
UPDATE_TURNS = TURNS
#: Long enough that every caller of the run gets its settled answer, not a timeout.
CALLER_WAIT = timedelta(seconds=120)


@pytest.mark.timeout(480)
async def test_run_driven_through_updates_continues_as_new(
    suggesting_env: WorkflowEnvironment, model: ScriptedModel, tmp_path: Path
) -> None:
    """Started and decided as the API does: each caller stays attached until the run settles.

    The run answers attached callers ``RUNNING`` before it continues as new,
    and the client attaches again to the next execution, so the run continues
    as new at each suggestion and every caller still gets the settled run.
    """
    client = suggesting_env.client
    message = f"Keep counting the orders through the API ({uuid.uuid4().hex[:8]})"
    model.script(message, *script(message, UPDATE_TURNS))
    settings = make_settings(
        model,
        tmp_path,
        f"tq-{uuid.uuid4()}",
        agent_modules=TEST_AGENT_MODULES,
        max_turns=UPDATE_TURNS + 1,
    )
    run = build_run_input(
        settings, agent_id=AGENT_ID, message=message, requester=Principal(id="rita")
    )
    approver = Principal(id="alice", roles=("approver",))
    async with running_worker(client, settings) as worker:
        started, view = await RunClient.start(
            client, run, task_queue=settings.temporal_task_queue, wait=CALLER_WAIT
        )
        answers = [view]
        latest = RunClient.of(client, run.run_id)
        while view is not None and view.status is RunStatus.PAUSED:
            decided = await latest.decide(
                DecideRequest(
                    decisions=[
                        DecisionInput(tool_call_id=c.tool_call_id, confirmed=True)
                        for c in view.pending
                    ],
                    principal=approver,
                ),
                wait=CALLER_WAIT,
            )
            view = None if decided is None else decided.run
            answers.append(view)
        first_run = started.handle.first_execution_run_id or started.handle.result_run_id
        assert first_run is not None
        histories = await run_chain(client, workflow_id(run.run_id), first_run)
        final = await latest.view()
        deletes = worker.db.effect_count("delete_records")

    gated = UPDATE_TURNS // GATED_EVERY
    # Every caller got the run as it settled: paused at each gated turn, then done.
    assert [a.status if a else None for a in answers] == [RunStatus.PAUSED] * gated + [
        RunStatus.COMPLETED
    ]
    assert final.status is RunStatus.COMPLETED, final.error
    assert [t.state for t in final.tools] == [CallState.EXECUTED] * (UPDATE_TURNS + gated)
    assert deletes == gated
    executions = [measure(h) for h in histories]
    report(f"long run: {UPDATE_TURNS} turns, started and decided through updates", executions)
    assert len(executions) > 1, executions
    assert sum(e.turns for e in executions) == UPDATE_TURNS + 1
    for ex in executions:
        assert ex.events <= SUGGEST_AT + ONE_TURN_EVENTS, executions
    # No execution closed with an update still attached: each one it accepted,
    # it answered.
    for history in histories:
        accepted, completed = update_events(history)
        assert accepted == completed, (accepted, completed)
