"""Concurrent decisions over real HTTP, by several principals, against a real worker.

The API runs under uvicorn with authentication on (the security tests'
fixtures): each principal has its own credentials, so "two people at once"
is two requests with two identities. Every race must end with exactly one
outcome per call: one winner, losers answered 409 with the code that says
why, and in the demo database at most one effect per call, made only when
the outcome is an approval. Effects are counted by the tool's idempotency
key (``{run_id}:{tool_call_id}``, the approval id), so a second execution
under any key would show as a second row.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import assert_error
from tests.scripted_openai import Call, ScriptedModel
from tests.security import conftest as security
from tests.security.conftest import Secure, SecureFactory

# The security tests' fixtures: a worker serving their agent, and the API with
# authentication on under uvicorn, one credential per principal.
worker = security.worker
secure_api = security.secure_api


@pytest.fixture
async def sec(secure_api: SecureFactory) -> AsyncIterator[Secure]:
    """The API with auth on and default limits."""
    async with secure_api() as api:
        yield api


#: What a loser hears: the workflow refused it because the call was decided, or
#: the API read the run after the winner had resumed it.
LOSING_CODES = {"already_decided", "not_paused"}
RUNS_IN_FLIGHT = 10


def name_of(decision: dict[str, Any]) -> str:
    """Who made a recorded decision, by the name the test knows them by.

    The key store may namespace API-key principals (``key:<name>``); the
    tests name principals without it.
    """
    principal: str = decision["principal_id"]
    return principal.rpartition(":")[2]


def effects(sec: Secure) -> Counter[str]:
    """Rows in the demo database's outbox, by idempotency key."""
    return Counter(n.idempotency_key for n in sec.db.notifications())


async def paused_runs(
    sec: Secure, model: ScriptedModel, count: int, tool: str, **args: Any
) -> list[dict[str, Any]]:
    """``count`` runs started by rita, each paused on one call of ``tool``."""
    gate = asyncio.Semaphore(10)
    tag = uuid.uuid4().hex[:8]

    async def one(i: int) -> dict[str, Any]:
        async with gate:
            return await sec.start(model, "rita", f"race {tag} {i}", Call(tool, args))

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def decide(sec: Secure, who: str, call: dict[str, Any], confirmed: bool) -> httpx.Response:
    """``POST /approvals/{id}/approve`` or ``/reject`` as ``who``."""
    verb = "approve" if confirmed else "reject"
    return await sec.http.post(
        f"/approvals/{call['approval_id']}/{verb}", json={}, headers=sec.auth(who)
    )


async def continue_as(
    sec: Secure, who: str, run: dict[str, Any], confirmed: bool
) -> tuple[str, bool, httpx.Response]:
    """``POST .../continue`` as ``who`` with one decision on the run's call."""
    call = run["tools"][0]
    response = await sec.http.post(
        f"/agents/{run['agent_id']}/runs/{run['run_id']}/continue",
        json={
            "tools": [
                {
                    "tool_call_id": call["tool_call_id"],
                    "tool_name": call["tool_name"],
                    "tool_args": call["tool_args"],
                    "confirmed": confirmed,
                }
            ]
        },
        headers=sec.auth(who),
    )
    return who, confirmed, response


def one_winner(
    attempts: list[tuple[str, bool, httpx.Response]],
) -> tuple[str, bool]:
    """The one attempt answered 200; every other is a 409 with a losing code."""
    winners = [(who, confirmed) for who, confirmed, r in attempts if r.status_code == 200]
    assert len(winners) == 1, [(w, c, r.status_code, r.text) for w, c, r in attempts]
    for _, _, response in attempts:
        if response.status_code != 200:
            assert response.status_code == 409, response.text
            assert response.json()["code"] in LOSING_CODES, response.text
    return winners[0]


async def assert_settled_as(
    sec: Secure, run: dict[str, Any], winner: str, confirmed: bool, before: Counter[str]
) -> None:
    """The run ended with the winner's decision only, and one effect iff approved."""
    call = run["tools"][0]
    final = await sec.run(run["run_id"])
    assert final["status"] == "COMPLETED", final
    (tool,) = final["tools"]
    assert tool["state"] == ("EXECUTED" if confirmed else "REJECTED"), tool
    assert [(name_of(d), d["confirmed"]) for d in tool["decisions"]] == [(winner, confirmed)]
    key = call["approval_id"]
    assert effects(sec)[key] - before[key] == (1 if confirmed else 0)
    decided = [
        e
        for e in await sec.audit(run["run_id"])
        if e["kind"] == "approval.decided" and e["tool_call_id"] == call["tool_call_id"]
    ]
    assert len(decided) == 1, decided


async def test_approve_against_reject_by_two_principals(sec: Secure, model: ScriptedModel) -> None:
    runs = await paused_runs(sec, model, 6, "purge", target="logs")
    before = effects(sec)

    async def race(run: dict[str, Any]) -> list[tuple[str, bool, httpx.Response]]:
        call = run["tools"][0]
        approve, reject = await asyncio.gather(
            decide(sec, "alice", call, True), decide(sec, "bob", call, False)
        )
        return [("alice", True, approve), ("bob", False, reject)]

    outcomes = await asyncio.gather(*(race(run) for run in runs))

    for run, attempts in zip(runs, outcomes, strict=True):
        winner, confirmed = one_winner(attempts)
        await assert_settled_as(sec, run, winner, confirmed, before)
    assert sum(effects(sec).values()) - sum(before.values()) == sum(
        1 for attempts in outcomes if one_winner(attempts)[1]
    )


async def test_two_four_eyes_approvals_at_once_both_count(
    sec: Secure, model: ScriptedModel
) -> None:
    runs = await paused_runs(sec, model, 4, "wire_money", amount=100)
    before = effects(sec)

    async def both(run: dict[str, Any]) -> tuple[httpx.Response, httpx.Response]:
        call = run["tools"][0]
        first, second = await asyncio.gather(
            decide(sec, "alice", call, True), decide(sec, "bob", call, True)
        )
        return first, second

    answers = await asyncio.gather(*(both(run) for run in runs))

    for run, (first, second) in zip(runs, answers, strict=True):
        assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
        final = await sec.run(run["run_id"])
        (tool,) = final["tools"]
        assert tool["state"] == "EXECUTED", tool
        assert sorted(name_of(d) for d in tool["decisions"]) == ["alice", "bob"]
        key = run["tools"][0]["approval_id"]
        assert effects(sec)[key] - before[key] == 1
        executed = [e for e in await sec.audit(run["run_id"]) if e["kind"] == "tool.executed"]
        assert len(executed) == 1, executed


async def test_two_redemptions_of_one_link_at_once(sec: Secure, model: ScriptedModel) -> None:
    runs = await paused_runs(sec, model, 4, "purge", target="cache")
    tokens = []
    for run in runs:
        minted = await sec.mint("alice", run["tools"][0])
        assert minted.status_code == 201, minted.text
        tokens.append(minted.json()["token"])
    before = effects(sec)

    answers = await asyncio.gather(
        *(asyncio.gather(sec.redeem(token), sec.redeem(token)) for token in tokens)
    )

    for run, pair in zip(runs, answers, strict=True):
        statuses = sorted(r.status_code for r in pair)
        assert statuses == [200, 409], [r.text for r in pair]
        loser = next(r for r in pair if r.status_code == 409)
        assert "already decided by" in assert_error(loser, 409, "already_decided")
        await assert_settled_as(sec, run, "alice", True, before)


async def test_200_continue_requests_over_50_runs(sec: Secure, model: ScriptedModel) -> None:
    runs = await paused_runs(sec, model, 50, "purge", target="tmp")
    before = effects(sec)
    deciders = [("alice", True), ("bob", False), ("dora", True), ("ada", False)]
    # Each run's four requests (two approving, two rejecting, by four principals)
    # go out together, in a shuffled order; RUNS_IN_FLIGHT runs race at a time.
    # The worker shares this event loop and the machine's cores: with all 200
    # at once some reads of the run outlast the API's 5 s query budget and are
    # answered 503 worker_unavailable (documented, retryable), a capacity
    # limit rather than a race.
    gate = asyncio.Semaphore(RUNS_IN_FLIGHT)
    shuffle = random.Random(10)

    async def race(run: dict[str, Any]) -> list[tuple[str, bool, httpx.Response]]:
        order = shuffle.sample(deciders, len(deciders))
        async with gate:
            return list(
                await asyncio.gather(*(continue_as(sec, who, run, ok) for who, ok in order))
            )

    outcomes = await asyncio.gather(*(race(run) for run in runs))

    assert sum(len(attempts) for attempts in outcomes) == 200
    approved = 0
    for run, attempts in zip(runs, outcomes, strict=True):
        winner, confirmed = one_winner(attempts)
        approved += confirmed
        await assert_settled_as(sec, run, winner, confirmed, before)
    assert sum(effects(sec).values()) - sum(before.values()) == approved
