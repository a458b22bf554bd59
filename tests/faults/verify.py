"""What must hold after a fault run, read from Temporal, the demo database and the API.

Every check adds a sentence to ``Verdict.problems``; the figures (runs, kills,
effects, lost, doubled, stuck, recovery) go to the results JSON.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.service import RPCError

from countersign import search_attributes as sa
from countersign.audit_export import verify_lines
from countersign.demo_db import SEED_TABLES, DemoDatabase
from countersign.models import RUN_WORKFLOW, AuditKind, CallState, RunStatus, RunView
from tests.faults.load import Answer, CallSeen, Flow, Load
from tests.faults.stack import AGENT_ID, FaultStack, poll_until

RUNS_QUERY = f"WorkflowType = '{RUN_WORKFLOW}'"
OPEN_QUERY = f"{RUNS_QUERY} AND ExecutionStatus = 'Running'"
RUNNING_QUERY = f"{OPEN_QUERY} AND {sa.STATUS.name} = '{RunStatus.RUNNING.value}'"
FINAL_CALL_STATES = frozenset({CallState.EXECUTED, CallState.REJECTED, CallState.EXPIRED})
PARALLEL_READS = 8


@dataclass
class Kill:
    """One kill and the restart after it.

    Attributes:
        kind: ``worker``, ``api``, ``temporal`` or ``all``.
        killed_at: Wall clock of the SIGKILL.
        restarted_at: Wall clock when the first killed process was started again.
        killed_mono: ``time.monotonic()`` of the SIGKILL (orders it against answers).
        down_seconds: From the kill to the restart.
        recovery_seconds: From the restart until no run was RUNNING.
        running_at_restart: Runs RUNNING when the stack answered again.
        due_while_down: Keys of undecided calls whose TTL fell due while down.
    """

    kind: str
    killed_at: datetime
    restarted_at: datetime
    killed_mono: float
    down_seconds: float
    recovery_seconds: float = 0.0
    running_at_restart: int = 0
    due_while_down: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    """The figures of a fault run and every violated guarantee."""

    kind: str
    config: str
    seed: int
    runs: int = 0
    flows: int = 0
    orphan_runs: int = 0
    orphan_create_answers: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    executed: int = 0
    rejected: int = 0
    expired: int = 0
    effects: int = 0
    acknowledged: int = 0
    acknowledged_before_a_kill: int = 0
    lost: int = 0
    doubled: int = 0
    stuck: int = 0
    timers_due_while_down: int = 0
    audit_verified: int = 0
    kills: list[Kill] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def recovery_seconds(self) -> float:
        """The slowest recovery of the run."""
        return max((k.recovery_seconds for k in self.kills), default=0.0)

    def as_json(self) -> dict[str, Any]:
        """The verdict for the results file."""
        data = asdict(self)
        data["recovery_seconds"] = self.recovery_seconds
        encoded: dict[str, Any] = json.loads(json.dumps(data, default=str))
        return encoded


async def running_count(client: Client) -> int | None:
    """Runs whose status is RUNNING (visibility), or ``None`` while Temporal is away."""
    try:
        return (await client.count_workflows(RUNNING_QUERY)).count
    except RPCError:
        return None


async def wait_all_closed(client: Client, within: float) -> list[str]:
    """Wait until no run is open; return the ids of those still open after ``within`` s."""

    async def none_open() -> bool:
        try:
            return (await client.count_workflows(OPEN_QUERY)).count == 0
        except RPCError:
            return False

    try:
        await poll_until(none_open, within=within, what="every run to close", interval=0.5)
    except AssertionError:
        return [w.id async for w in client.list_workflows(OPEN_QUERY)]
    return []


async def _views(client: Client) -> dict[str, RunView]:
    ids = sorted({w.id async for w in client.list_workflows(RUNS_QUERY)})
    limit = asyncio.Semaphore(PARALLEL_READS)

    async def view(wid: str) -> RunView:
        async with limit:
            result: RunView = await client.get_workflow_handle(wid, result_type=RunView).result()
            return result

    views = await asyncio.gather(*(view(w) for w in ids))
    return {v.run_id: v for v in views}


def _effects(db: DemoDatabase) -> dict[str, str]:
    uri = f"file:{db.path}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        rows = conn.execute("SELECT idempotency_key, result FROM tool_effects").fetchall()
    return {str(key): str(result) for key, result in rows}


async def _audit(http: httpx.AsyncClient, run_id: str) -> tuple[str | None, list[dict[str, Any]]]:
    """A problem with the run's trail (``None`` when it verifies), and its events."""
    response = await http.get(f"/agents/{AGENT_ID}/runs/{run_id}/audit")
    if response.status_code != 200:
        return f"run {run_id}: audit answered {response.status_code} {response.text[:200]}", []
    body = response.json()
    events: list[dict[str, Any]] = body["events"]
    report = verify_lines(json.dumps(e) for e in events)
    if not body["chain_intact"] or not report.ok or not events:
        return f"run {run_id}: audit trail does not verify: {report.breaks}", events
    return None, events


async def verify(
    stack: FaultStack, load: Load, verdict: Verdict, *, close_within: float
) -> Verdict:
    """Check every guarantee once the load has stopped; fill ``verdict``."""
    client = await stack.client()
    problems = verdict.problems
    problems.extend(load.unexpected)

    still_open = await wait_all_closed(client, close_within)
    verdict.stuck = len(still_open)
    problems.extend(f"run {w} still open {close_within:g} s after the load" for w in still_open)

    views = await _views(client)
    effects = _effects(DemoDatabase(stack.settings.demo_db_path))
    verdict.runs = len(views)
    verdict.flows = len(load.flows)
    verdict.effects = len(effects)

    states: dict[str, CallState] = {}
    executed_rows: Counter[str] = Counter()
    for view in views.values():
        if view.status is not RunStatus.COMPLETED:
            problems.append(f"run {view.run_id} ended {view.status}: {view.error}")
        for call in view.tools:
            key = f"{view.run_id}:{call.tool_call_id}"
            states[key] = call.state
            verdict.calls += 1
            if call.state not in FINAL_CALL_STATES:
                problems.append(f"call {key} left in {call.state}")
            if call.state is CallState.EXECUTED:
                verdict.executed += 1
                executed_rows[str(call.tool_args["table_name"])] += int(
                    str(call.tool_args["count"])
                )
                if not any(d.confirmed for d in call.decisions):
                    problems.append(f"call {key} executed without an approval")
                if key not in effects:
                    verdict.lost += 1
                    problems.append(f"call {key} EXECUTED but no effect under its key")
            elif key in effects:
                verdict.doubled += 1
                problems.append(f"call {key} is {call.state} but has an effect: {effects[key]}")
            verdict.rejected += call.state is CallState.REJECTED
            verdict.expired += call.state is CallState.EXPIRED
    for key in effects.keys() - states.keys():
        verdict.doubled += 1
        problems.append(f"effect under {key} belongs to no call of any run")

    # An effect made twice under two keys would pass the checks by key; the
    # rows actually gone from each table would not add up.
    db = DemoDatabase(stack.settings.demo_db_path)
    for table, seeded in SEED_TABLES.items():
        gone = seeded - db.count(table)
        if gone != executed_rows[table]:
            verdict.doubled += 1
            problems.append(
                f"{table}: {gone} rows deleted, the executed calls account for "
                f"{executed_rows[table]}"
            )

    _check_flows(load.flows, views, states, verdict)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30.0) as http:
        audits = await _check_audits(http, views, verdict)
    _check_due_while_down(load, verdict, audits, states)
    return verdict


def _check_flows(
    flows: list[Flow], views: dict[str, RunView], states: dict[str, CallState], verdict: Verdict
) -> None:
    problems = verdict.problems
    first_kill = min((k.killed_mono for k in verdict.kills), default=float("inf"))
    known = {f.run_id for f in flows if f.run_id}
    verdict.orphan_runs = len(views.keys() - known)
    by_message = {f.message: f for f in flows}
    answers: Counter[str] = Counter()
    for run_id in views.keys() - known:
        # What the API answered the create that started it: the flow with its
        # message tried again after that answer.
        flow_of = by_message.get(views[run_id].message)
        failed = [a for a in flow_of.creates if a.status not in (200, 202)] if flow_of else []
        answers[_describe(failed[0]) if failed else "unknown"] += 1
        # Started by a create whose answer was lost: nobody knows it, so it
        # must expire like any call nobody answers.
        for orphan in views[run_id].tools:
            if orphan.state is not CallState.EXPIRED:
                problems.append(f"orphan run {run_id}: call {orphan.tool_call_id} {orphan.state}")
    verdict.orphan_create_answers = dict(answers)
    for flow in flows:
        if flow.run_id is not None and flow.run_id not in views:
            # The API answered the create with this run, so it must exist.
            verdict.lost += 1
            problems.append(f"flow {flow.index}: run {flow.run_id} is not in Temporal")
            continue
        for call in flow.calls:
            state = states.get(call.key)
            wanted = _wanted(call)
            if flow.acked_at is not None:
                verdict.acknowledged += 1
                verdict.acknowledged_before_a_kill += flow.acked_at < first_kill
                if state is not wanted:
                    verdict.lost += 1
                    problems.append(
                        f"flow {flow.index}: decision on {call.key} acknowledged, "
                        f"but the call is {state}, not {wanted}"
                    )
            elif state not in (wanted, CallState.EXPIRED):
                problems.append(f"flow {flow.index}: {call.key} is {state}, wanted {wanted}")
            elif (
                flow.refused is not None
                and flow.refused.status == 410
                and state is not CallState.EXPIRED
            ):
                problems.append(f"flow {flow.index}: 410 for {call.key} but it is {state}")


def _describe(answer: Answer) -> str:
    if answer.status is None:
        return f"no answer ({answer.error})"
    return f"{answer.status} {answer.code}"


def _wanted(call: CallSeen) -> CallState:
    if call.confirm is None:
        return CallState.EXPIRED
    return CallState.EXECUTED if call.confirm else CallState.REJECTED


async def _check_audits(
    http: httpx.AsyncClient, views: dict[str, RunView], verdict: Verdict
) -> dict[str, list[dict[str, Any]]]:
    limit = asyncio.Semaphore(PARALLEL_READS)

    async def one(run_id: str) -> tuple[str, str | None, list[dict[str, Any]]]:
        async with limit:
            problem, events = await _audit(http, run_id)
            return run_id, problem, events

    audits: dict[str, list[dict[str, Any]]] = {}
    for run_id, problem, events in await asyncio.gather(*(one(r) for r in views)):
        audits[run_id] = events
        if problem is None:
            verdict.audit_verified += 1
        else:
            verdict.problems.append(problem)
    return audits


def _check_due_while_down(
    load: Load,
    verdict: Verdict,
    audits: dict[str, list[dict[str, Any]]],
    states: dict[str, CallState],
) -> None:
    """Undecided calls whose TTL fell due during an outage expired, after the restart."""
    for kill in verdict.kills:
        if kill.kind == "api":
            # Timers fire in Temporal and run on the worker: both stayed up.
            continue
        for call in load.pending_expiries():
            if not kill.killed_at < call.expires_at < kill.restarted_at:
                continue
            kill.due_while_down.append(call.key)
            verdict.timers_due_while_down += 1
            if states.get(call.key) is not CallState.EXPIRED:
                verdict.problems.append(f"{call.key} fell due while down but is not EXPIRED")
                continue
            fired = [
                datetime.fromisoformat(e["at"])
                for e in audits.get(call.run_id, [])
                if e["kind"] == AuditKind.APPROVAL_EXPIRED
                and e["tool_call_id"] == call.tool_call_id
            ]
            if not fired or fired[0] < kill.restarted_at:
                verdict.problems.append(
                    f"{call.key} fell due while down; its expiry is recorded at {fired}, "
                    f"not after the restart at {kill.restarted_at}"
                )
