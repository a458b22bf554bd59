"""Refused decisions over HTTP cannot grow a run's history without bound.

Temporal terminates a run whose history passes 50 MB, losing its pending
calls. A refusal the run records is a signal, and every signal is a history
event, so: ids and names are capped before anything reaches Temporal; a caller
who may not decide the run at all is answered without touching it; and the
refusals of one who may are recorded as a bounded summary, a few a minute.
"""

from __future__ import annotations

import uuid
from typing import Any

from countersign.client import workflow_id
from countersign.limits import MAX_ID_LENGTH
from tests.api.conftest import assert_error
from tests.scripted_openai import Call, ScriptedModel
from tests.security.conftest import AGENT, Secure

REQUESTS = 200
#: What 200 refused requests may add to the history, all told.
GROWTH_LIMIT = 200 * 1024
#: What the few refusals recorded per minute may add, even on a slow machine.
RECORDED_LIMIT = 50 * 1024


async def _history_bytes(sec: Secure, run_id: str) -> int:
    history = await sec.client.get_workflow_handle(workflow_id(run_id)).fetch_history()
    return sum(event.ByteSize() for event in history.events)


async def _paused(sec: Secure, model: ScriptedModel) -> dict[str, Any]:
    return await sec.start(
        model, "rita", f"purge {uuid.uuid4().hex}", Call("purge", {"target": "keep"})
    )


def _big_body(id_chars: int, note_chars: int = 2000) -> dict[str, Any]:
    """100 decisions naming calls the run does not have (about 240 KB as used here)."""
    return {
        "tools": [
            {
                "tool_call_id": f"{i:04d}".ljust(id_chars, "x"),
                "confirmed": True,
                "note": "n" * note_chars,
            }
            for i in range(100)
        ]
    }


def _continue_url(run: dict[str, Any]) -> str:
    return f"/agents/{AGENT}/runs/{run['run_id']}/continue"


async def test_200_refused_250kb_requests_leave_the_run_paused_and_history_small(
    sec: Secure, model: ScriptedModel
) -> None:
    run = await _paused(sec, model)
    body = _big_body(MAX_ID_LENGTH)
    size = len(sec.http.build_request("POST", "/", json=body).content)
    assert 200 * 1024 < size < sec.settings.max_body_bytes
    before = await _history_bytes(sec, run["run_id"])

    for _ in range(REQUESTS):
        answer = await sec.http.post(_continue_url(run), json=body, headers=sec.auth("alice"))
        assert_error(answer, 404, "unknown_tool_call")

    after = await sec.run(run["run_id"])
    assert after["status"] == "PAUSED"
    assert after["tools"] == run["tools"]
    growth = await _history_bytes(sec, run["run_id"]) - before
    assert growth < GROWTH_LIMIT, f"history grew by {growth} bytes"
    # Each recorded refusal is a signal of about 1 KB; the API sends a few a
    # minute per caller and run, not one per request (all 200 would be ~180 KB).
    assert growth < RECORDED_LIMIT, f"history grew by {growth} bytes"
    # Still recorded: who was refused, why, and how many calls they named.
    refused = [e for e in await sec.audit(run["run_id"]) if e["kind"] == "approval.refused"]
    assert refused
    assert refused[0]["data"]["code"] == "unknown_tool_call"


async def test_over_long_ids_are_422_before_temporal(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    before = await _history_bytes(sec, run["run_id"])

    long_id = await sec.http.post(
        _continue_url(run), json=_big_body(2400, note_chars=0), headers=sec.auth("alice")
    )
    long_name = await sec.http.post(
        _continue_url(run),
        json={"tools": [{**_big_body(8)["tools"][0], "tool_name": "t" * (MAX_ID_LENGTH + 1)}]},
        headers=sec.auth("alice"),
    )
    long_approval = await sec.approve("alice", {"approval_id": f"{run['run_id']}:{'c' * 300}"})

    for answer in (long_id, long_name, long_approval):
        assert_error(answer, 422, "invalid_request")
    assert await sec.run(run["run_id"]) == run
    assert await _history_bytes(sec, run["run_id"]) == before


async def test_callers_who_may_not_decide_are_not_recorded(
    sec: Secure, model: ScriptedModel
) -> None:
    run = await sec.start(
        model, "rita", f"drop {uuid.uuid4().hex}", Call("drop_table", {"name": "t"})
    )
    call = run["tools"][0]
    before = await _history_bytes(sec, run["run_id"])
    entry = {"tool_call_id": call["tool_call_id"], "confirmed": True, "note": "n" * 2000}

    # A viewer reads the run but decides nothing; another session is not this run's.
    viewer = await sec.http.post(
        _continue_url(run), json={"tools": [entry]}, headers=sec.auth("vera")
    )
    other_session = await sec.http.post(
        _continue_url(run),
        json={"tools": [entry], "session_id": "not-the-runs"},
        headers=sec.auth("alice"),
    )
    # drop_table needs the dba role: alice is an approver, but not for this call.
    no_role = [await sec.approve("alice", call) for _ in range(20)]

    assert_error(viewer, 403, "forbidden")
    assert_error(other_session, 409, "session_mismatch")
    for answer in no_role:
        assert_error(answer, 403, "approver_role_required")
    assert await sec.run(run["run_id"]) == run
    assert await _history_bytes(sec, run["run_id"]) == before
    assert not [e for e in await sec.audit(run["run_id"]) if e["kind"] == "approval.refused"]
