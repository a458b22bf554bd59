"""Every route against every kind of caller, auth ON, real app, real Temporal, real worker.

Columns: the run's own requester, another requester, an approver (signed in
with a JWT), a viewer, an admin, and a caller without credentials. A run is
paused on ``purge`` (one approval) by ``rita``. Where a route changes the run,
each caller gets a fresh run. A refusal must leave the run exactly as it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.security.conftest import AGENT, Secure

CALLERS: tuple[tuple[str, str | None], ...] = (
    ("owner", "rita"),
    ("requester", "rick"),
    ("approver", "alice"),
    ("viewer", "vera"),
    ("admin", "ada"),
    ("anonymous", None),
)

Expect = tuple[int, str | None]
OK: Expect = (200, None)
CREATED: Expect = (201, None)
NO_AUTH: Expect = (401, "unauthenticated")
FORBIDDEN: Expect = (403, "forbidden")
HIDDEN_RUN: Expect = (404, "unknown_run")
HIDDEN_APPROVAL: Expect = (404, "unknown_approval")

Send = Callable[[Secure, dict[str, Any], str | None, ScriptedModel], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Route:
    """One route, how to call it, and what each caller gets (in ``CALLERS`` order)."""

    name: str
    send: Send
    expected: tuple[Expect, ...]
    changes_run: bool = False


def _decision(call: dict[str, Any]) -> dict[str, Any]:
    return {
        "tool_call_id": call["tool_call_id"],
        "tool_name": call["tool_name"],
        "tool_args": call["tool_args"],
        "confirmed": True,
    }


async def _start(sec: Secure, run: dict[str, Any], who: str | None, model: ScriptedModel) -> Any:
    message = f"just answer {uuid.uuid4().hex}"
    model.script(message, Reply(text="done"))
    response = await sec.http.post(
        f"/agents/{AGENT}/runs", data={"message": message}, headers=sec.auth(who)
    )
    if response.status_code == 200:
        sec.run_ids.add(response.json()["run_id"])
    return response


def _get(path: Callable[[dict[str, Any]], str]) -> Send:
    async def send(
        sec: Secure, run: dict[str, Any], who: str | None, model: ScriptedModel
    ) -> httpx.Response:
        return await sec.http.get(path(run), headers=sec.auth(who))

    return send


def _post(path: Callable[[dict[str, Any]], str], body: Callable[[dict[str, Any]], Any]) -> Send:
    async def send(
        sec: Secure, run: dict[str, Any], who: str | None, model: ScriptedModel
    ) -> httpx.Response:
        return await sec.http.post(path(run), json=body(run), headers=sec.auth(who))

    return send


def _run_path(run: dict[str, Any]) -> str:
    return f"/agents/{AGENT}/runs/{run['run_id']}"


def _approval_path(run: dict[str, Any]) -> str:
    return f"/approvals/{run['tools'][0]['approval_id']}"


EVERYONE = (OK, OK, OK, OK, OK, NO_AUTH)
READ_RUN = (OK, HIDDEN_RUN, OK, OK, OK, NO_AUTH)
DECIDE_RUN = (OK, HIDDEN_RUN, OK, FORBIDDEN, OK, NO_AUTH)
READ_APPROVAL = (OK, HIDDEN_APPROVAL, OK, OK, OK, NO_AUTH)
DECIDE_APPROVAL = (OK, HIDDEN_APPROVAL, OK, FORBIDDEN, OK, NO_AUTH)

ROUTES = [
    Route("GET /health", _get(lambda r: "/health"), (OK,) * 6),
    Route("GET /agents", _get(lambda r: "/agents"), EVERYONE),
    Route("GET /agents/{id}", _get(lambda r: f"/agents/{AGENT}"), EVERYONE),
    Route("POST /agents/{id}/runs", _start, (OK, OK, FORBIDDEN, FORBIDDEN, OK, NO_AUTH)),
    Route("GET /agents/{id}/runs", _get(lambda r: f"/agents/{AGENT}/runs"), EVERYONE),
    Route("GET /agents/{id}/runs/{run_id}", _get(_run_path), READ_RUN),
    Route(
        "GET /agents/{id}/runs/{run_id}/audit", _get(lambda r: _run_path(r) + "/audit"), READ_RUN
    ),
    Route(
        "POST /agents/{id}/runs/{run_id}/continue",
        _post(
            lambda r: _run_path(r) + "/continue", lambda r: {"tools": [_decision(r["tools"][0])]}
        ),
        DECIDE_RUN,
        changes_run=True,
    ),
    Route("GET /approvals", _get(lambda r: "/approvals"), EVERYONE),
    Route("GET /approvals/{id}", _get(_approval_path), READ_APPROVAL),
    Route(
        "POST /approvals/{id}/approve",
        _post(lambda r: _approval_path(r) + "/approve", lambda r: {"note": "ok"}),
        DECIDE_APPROVAL,
        changes_run=True,
    ),
    Route(
        "POST /approvals/{id}/reject",
        _post(lambda r: _approval_path(r) + "/reject", lambda r: {"note": "no"}),
        DECIDE_APPROVAL,
        changes_run=True,
    ),
    Route(
        "POST /approvals/{id}/tokens",
        _post(lambda r: _approval_path(r) + "/tokens", lambda r: {"confirmed": True}),
        (FORBIDDEN, FORBIDDEN, CREATED, FORBIDDEN, CREATED, NO_AUTH),
    ),
]


def _outcome(response: httpx.Response) -> Expect:
    body = response.json()
    if response.status_code >= 400:
        assert set(body) == {"detail", "code"}, body
        return response.status_code, body["code"]
    return response.status_code, None


@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
async def test_route_by_role_matrix(sec: Secure, model: ScriptedModel, route: Route) -> None:
    shared: dict[str, Any] | None = None
    got: list[tuple[str, Expect]] = []
    for column, who in CALLERS:
        if route.changes_run or shared is None:
            run = await sec.start(
                model, "rita", f"purge {uuid.uuid4().hex}", Call("purge", {"target": "t"})
            )
            shared = run
        run = shared
        response = await route.send(sec, run, who, model)
        if response.status_code == 201:
            sec.remember(response.json()["token"])
        outcome = _outcome(response)
        got.append((column, outcome))
        after = await sec.run(run["run_id"])
        if outcome[0] >= 400 or not route.changes_run:
            assert after == run, f"{route.name} as {column} changed the run"
        else:
            # The decision is recorded as the caller's, whatever the body says.
            [decision] = after["tools"][0]["decisions"]
            assert who is not None and decision["principal_id"] == sec.pid(who), (column, decision)
    assert got == list(zip([c for c, _ in CALLERS], route.expected, strict=True))
