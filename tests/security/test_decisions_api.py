"""Decisions with auth on: replays, four eyes, argument binding, approver roles, scopes."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.conftest import assert_error, eventually
from tests.scripted_openai import Call, ScriptedModel
from tests.security.conftest import AGENT, Secure


def _effects(sec: Secure, tool_name: str) -> int:
    return sum(1 for n in sec.db.notifications() if n.recipient == tool_name)


async def _paused(sec: Secure, model: ScriptedModel, *calls: Call, who: str = "rita") -> Any:
    return await sec.start(model, who, f"ops {uuid.uuid4().hex}", *calls)


def _short(call: dict[str, Any], **changes: Any) -> dict[str, Any]:
    entry = {
        "tool_call_id": call["tool_call_id"],
        "tool_name": call["tool_name"],
        "tool_args": call["tool_args"],
        "confirmed": True,
    }
    entry.update(changes)
    return entry


async def test_continue_replayed_409_tool_ran_once(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model, Call("purge", {"target": "t"}))
    url = f"/agents/{AGENT}/runs/{run['run_id']}/continue"
    body = {"tools": [_short(run["tools"][0])]}

    first = await sec.http.post(url, json=body, headers=sec.auth("alice"))
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "COMPLETED"
    done = await sec.run(run["run_id"])
    again = await sec.http.post(url, json=body, headers=sec.auth("alice"))

    assert_error(again, 409, "not_paused")
    assert await sec.run(run["run_id"]) == done
    assert _effects(sec, "purge") == 1


async def test_approve_replayed_in_open_batch_409_already_decided(
    sec: Secure, model: ScriptedModel
) -> None:
    run = await _paused(sec, model, Call("purge", {"target": "a"}), Call("purge", {"target": "b"}))
    first_call = run["tools"][0]
    assert (await sec.approve("alice", first_call)).status_code == 200
    before = await sec.run(run["run_id"])

    again = await sec.approve("alice", first_call)

    assert "already decided by jwt:-:alice" in assert_error(again, 409, "already_decided")
    assert await sec.run(run["run_id"]) == before
    assert before["status"] == "PAUSED"
    assert _effects(sec, "purge") == 0


async def test_four_eyes_requester_then_same_approver_refused_two_approvers_execute(
    sec: Secure, model: ScriptedModel
) -> None:
    run = await _paused(sec, model, Call("wire_money", {"amount": 500}))
    call = run["tools"][0]

    own = await sec.approve("rita", call)
    assert "rita requested this run" in assert_error(own, 403, "self_approval_forbidden")
    assert await sec.run(run["run_id"]) == run

    first = await sec.approve("alice", call)
    assert first.status_code == 200, first.text
    half = await sec.run(run["run_id"])
    assert half["status"] == "PAUSED"
    assert half["tools"][0]["state"] == "AWAITING_CONFIRMATION"
    assert [d["principal_id"] for d in half["tools"][0]["decisions"]] == [sec.pid("alice")]
    shown = await sec.http.get(f"/approvals/{call['approval_id']}", headers=sec.auth("bob"))
    assert (shown.json()["approvals"], shown.json()["approvals_required"]) == (1, 2)

    twice = await sec.approve("alice", call)
    assert_error(twice, 409, "already_approved_by_principal")
    assert await sec.run(run["run_id"]) == half

    second = await sec.approve("bob", call)
    assert second.status_code == 200, second.text
    final = second.json()
    assert final["status"] == "COMPLETED"
    assert final["tools"][0]["state"] == "EXECUTED"
    assert [d["principal_id"] for d in final["tools"][0]["decisions"]] == [
        sec.pid("alice"),
        sec.pid("bob"),
    ]
    assert _effects(sec, "wire_money") == 1


async def test_approve_digest_mismatch_409_unchanged(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model, Call("purge", {"target": "t"}))

    response = await sec.approve("alice", run["tools"][0], args_digest="0" * 64)

    assert_error(response, 409, "args_mismatch")
    assert await sec.run(run["run_id"]) == run
    assert _effects(sec, "purge") == 0


async def test_continue_other_args_409_args_mismatch_unchanged(
    sec: Secure, model: ScriptedModel
) -> None:
    run = await _paused(sec, model, Call("purge", {"target": "t"}))

    response = await sec.http.post(
        f"/agents/{AGENT}/runs/{run['run_id']}/continue",
        json={"tools": [_short(run["tools"][0], tool_args={"target": "everything"})]},
        headers=sec.auth("alice"),
    )

    assert_error(response, 409, "args_mismatch")
    assert await sec.run(run["run_id"]) == run


async def test_approve_without_tool_role_403_dba_may(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model, Call("drop_table", {"name": "users"}))
    call = run["tools"][0]

    refused = await sec.approve("alice", call)
    assert_error(refused, 403, "approver_role_required")
    assert await sec.run(run["run_id"]) == run

    allowed = await sec.approve("dora", call)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["tools"][0]["state"] == "EXECUTED"
    assert _effects(sec, "drop_table") == 1


async def test_list_runs_requester_sees_only_own(sec: Secure, model: ScriptedModel) -> None:
    mine = await _paused(sec, model, Call("purge", {"target": "t"}))
    theirs = await _paused(sec, model, Call("purge", {"target": "u"}), who="rick")

    async def listing(who: str) -> set[str]:
        response = await sec.http.get(f"/agents/{AGENT}/runs", headers=sec.auth(who))
        assert response.status_code == 200, response.text
        return {r["run_id"] for r in response.json()["runs"]}

    wanted = {mine["run_id"], theirs["run_id"]}
    assert await eventually(lambda: listing("vera"), lambda ids: wanted <= ids) >= wanted
    # Other tests' runs share the principals' names: only these two runs matter.
    assert await listing("rita") & wanted == {mine["run_id"]}
    assert await listing("rick") & wanted == {theirs["run_id"]}
    other = await sec.http.get(
        f"/agents/{AGENT}/runs", params={"user_id": "rita"}, headers=sec.auth("rick")
    )
    assert_error(other, 403, "forbidden")


async def test_inbox_requester_sees_own_approver_sees_all(
    sec: Secure, model: ScriptedModel
) -> None:
    mine = await _paused(sec, model, Call("purge", {"target": "t"}))
    theirs = await _paused(sec, model, Call("purge", {"target": "u"}), who="rick")

    async def inbox(who: str, user_id: str | None = None) -> set[str]:
        # Filtered on the user: paused runs of other test modules share the server.
        params = {"agent_id": AGENT, "limit": 100, **({"user_id": user_id} if user_id else {})}
        response = await sec.http.get("/approvals", params=params, headers=sec.auth(who))
        assert response.status_code == 200, response.text
        return {a["run_id"] for a in response.json()["approvals"]}

    both = {mine["run_id"], theirs["run_id"]}
    for user, run in (("rita", mine), ("rick", theirs)):
        found = await eventually(
            lambda u=user: inbox("alice", sec.pid(u)), lambda ids, r=run: r["run_id"] in ids
        )
        assert run["run_id"] in found
    assert await inbox("rita") & both == {mine["run_id"]}
    assert await inbox("rick") & both == {theirs["run_id"]}
