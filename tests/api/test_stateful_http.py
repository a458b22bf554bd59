"""The decision invariants, driven through the HTTP API by a Hypothesis state machine.

A real stack (the API under uvicorn with authentication on, a real worker, the
session's Temporal dev server): the machine starts runs as two requesters on
tools with different rules (one approval, four eyes, a dba-only tool, a 400 ms
TTL), then has any of seven principals approve or reject them through either
channel (``/approvals`` or ``/continue``), sometimes with arguments other than
those shown, and sometimes waits for a deadline to pass. After every step:

- a call executes at most once (one outbox row per call, by idempotency key);
- only after the required number of distinct approvals, from eligible
  principals (never the requester on four eyes, only a dba on the dba tool);
- never after its deadline (every recorded decision predates it);
- never with other arguments than those shown when it paused;
- a refused decision changes nothing (the call's decisions are as before),
  and an accepted one adds exactly itself.

The pure rules have their own property tests (``tests/workflows``); this one
takes few examples because every step is real HTTP against a real run.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.api.test_races import name_of
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.security import conftest as security
from tests.security.conftest import AGENT, Secure, SecureFactory

# The security tests' fixtures: a worker serving their agent, and the API with
# authentication on under uvicorn, one credential per principal.
worker = security.worker
secure_api = security.secure_api

#: Each tool's argument, by which its effect (the outbox message) names it.
TOOLS: dict[str, str] = {
    "purge": "target",
    "wire_money": "amount",
    "drop_table": "name",
    "hurry": "target",
}
REQUESTERS = ["rita", "rick"]
APPROVERS = ["alice", "bob", "dora", "ada"]
CHANNELS = ["approvals", "continue"]
DECIDERS = ["rita", "rick", "alice", "bob", "dora", "vera", "ada"]
#: Every answer a decision may get; anything else (5xx, 202) fails the step.
DECISION_STATUSES = {200, 403, 404, 409, 410, 422}


@pytest.fixture
async def sec(secure_api: SecureFactory) -> AsyncIterator[Secure]:
    """The API with auth on; no rate limits, as the invariants read every run each step."""
    async with secure_api(rate_limit_per_minute=0, rate_limit_roles={}) as api:
        yield api


@dataclass
class Run:
    """A run the machine started, as it paused."""

    run_id: str
    requester: str
    tool: str
    call: dict[str, Any]

    @property
    def shown(self) -> str:
        """The argument the call paused with, as its effect records it."""
        return str(self.call["tool_args"][TOOLS[self.tool]])


def machine_for(sec: Secure, model: ScriptedModel) -> type[RuleBasedStateMachine]:
    """The state machine class, bound to the running API (Hypothesis builds instances)."""
    base_url = str(sec.http.base_url)

    class Decisions(RuleBasedStateMachine):
        runs = Bundle("runs")

        def __init__(self) -> None:
            super().__init__()
            self.http = httpx.Client(base_url=base_url, timeout=60)
            self.started: list[Run] = []

        def teardown(self) -> None:
            self.http.close()

        def read(self, run: Run) -> dict[str, Any]:
            response = self.http.get(f"/agents/{AGENT}/runs/{run.run_id}", headers=sec.auth("ada"))
            assert response.status_code == 200, response.text
            (tool,) = response.json()["tools"]
            call: dict[str, Any] = tool
            return call

        @rule(target=runs, tool=st.sampled_from(sorted(TOOLS)), who=st.sampled_from(REQUESTERS))
        def start(self, tool: str, who: str) -> Run:
            message = f"stateful {tool} {uuid.uuid4().hex}"
            value: Any = len(self.started) + 1
            if TOOLS[tool] != "amount":
                value = f"{tool}-{value}"
            model.script(message, Reply(calls=[Call(tool, {TOOLS[tool]: value})]))
            response = self.http.post(
                f"/agents/{AGENT}/runs", data={"message": message}, headers=sec.auth(who)
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["status"] == "PAUSED", body
            sec.run_ids.add(body["run_id"])
            run = Run(body["run_id"], who, tool, body["tools"][0])
            self.started.append(run)
            return run

        @rule(
            run=runs,
            who=st.sampled_from(DECIDERS),
            confirmed=st.booleans(),
            channel=st.sampled_from(CHANNELS),
            tamper=st.booleans(),
        )
        def decide(self, run: Run, who: str, confirmed: bool, channel: str, tamper: bool) -> None:
            self.send(run, who, confirmed, channel, tamper)

        # Approvals by principals who may approve have rules of their own, so
        # that they are frequent rather than one draw in dozens.
        @rule(run=runs, who=st.sampled_from(APPROVERS), channel=st.sampled_from(CHANNELS))
        def approve(self, run: Run, who: str, channel: str) -> None:
            self.send(run, who, True, channel, False)

        @rule(run=runs, who=st.sampled_from(APPROVERS), channel=st.sampled_from(CHANNELS))
        def approve_other_args(self, run: Run, who: str, channel: str) -> None:
            self.send(run, who, True, channel, True)

        def send(self, run: Run, who: str, confirmed: bool, channel: str, tamper: bool) -> None:
            """Decide ``run``'s call as ``who``; check what the answer changed."""
            before = self.read(run)
            args = dict(run.call["tool_args"])
            if tamper:
                key = TOOLS[run.tool]
                args[key] = args[key] + 1 if isinstance(args[key], int) else f"{args[key]}-x"
            if channel == "approvals":
                verb = "approve" if confirmed else "reject"
                body = {"tool_args": args} if tamper and confirmed else {}
                url = f"/approvals/{run.call['approval_id']}/{verb}"
            else:
                body = {
                    "tools": [
                        {
                            "tool_call_id": run.call["tool_call_id"],
                            "tool_name": run.tool,
                            "tool_args": args,
                            "confirmed": confirmed,
                        }
                    ]
                }
                url = f"/agents/{AGENT}/runs/{run.run_id}/continue"
            response = self.http.post(url, json=body, headers=sec.auth(who))
            after = self.read(run)

            assert response.status_code in DECISION_STATUSES, response.text
            if response.status_code != 200:
                assert after["decisions"] == before["decisions"], response.text
                return
            assert not (tamper and confirmed), f"edited arguments accepted: {response.text}"
            assert after["decisions"][: len(before["decisions"])] == before["decisions"]
            (added,) = after["decisions"][len(before["decisions"]) :]
            assert (name_of(added), added["confirmed"]) == (who, confirmed)

        @rule(run=runs)
        def let_expire(self, run: Run) -> None:
            # Only the 400 ms tool's deadline can pass within a test.
            if run.tool != "hurry":
                return
            ended = eventually_sync(lambda: self.read(run)["state"] != "AWAITING_CONFIRMATION")
            assert ended

        @invariant()
        def calls_keep_the_rules(self) -> None:
            effects: dict[str, list[str]] = {}
            for note in sec.db.notifications():
                effects.setdefault(note.idempotency_key, []).append(note.message)
            for run in self.started:
                call = self.read(run)
                done = effects.get(run.call["approval_id"], [])
                approvals = [d for d in call["decisions"] if d["confirmed"]]
                deadline = datetime.fromisoformat(call["expires_at"])
                assert len(done) <= 1, (run, done)
                assert all(
                    datetime.fromisoformat(d["decided_at"]) < deadline for d in call["decisions"]
                )
                if not done and call["state"] not in ("EXECUTING", "EXECUTED"):
                    continue
                assert done == [run.shown], (run, done)
                assert call["state"] in ("EXECUTING", "EXECUTED"), call
                approvers = {name_of(d) for d in approvals}
                assert len(approvers) == len(approvals) >= call["approvals_required"], call
                if call["approvals_required"] > 1:
                    assert run.requester not in approvers, call
                for role in call["approver_roles"]:
                    assert all(role in d["roles"] or "admin" in d["roles"] for d in approvals)

    return Decisions


def eventually_sync(probe: Callable[[], bool], within: float = 10.0) -> bool:
    """``probe()`` until it is true or ``within`` seconds pass (from the machine's thread)."""
    deadline = time.monotonic() + within
    while not probe():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def test_decision_invariants_hold_through_the_api(sec: Secure, model: ScriptedModel) -> None:
    machine = machine_for(sec, model)
    machine.TestCase.settings = settings(
        max_examples=8,
        stateful_step_count=12,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    # Hypothesis drives blocking requests: in a thread, so the worker and the
    # API, on this event loop, keep serving them.
    await asyncio.to_thread(run_state_machine_as_test, machine, settings=machine.TestCase.settings)
