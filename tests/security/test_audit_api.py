"""The audit trail through the API shows every request, decision, refusal, expiry and effect."""

from __future__ import annotations

import uuid

from countersign.client import workflow_id
from tests.api.conftest import assert_error, eventually
from tests.scripted_openai import Call, ScriptedModel
from tests.security.conftest import Secure, histories_on, leaks


async def test_read_audit_shows_every_kind_of_event(sec: Secure, model: ScriptedModel) -> None:
    run = await sec.start(
        model,
        "rita",
        f"audit {uuid.uuid4().hex}",
        Call("purge", {"target": "a"}),
        Call("hurry", {"target": "b"}),
    )
    purge, hurry = run["tools"]
    refused = await sec.approve("alice", purge, args_digest="0" * 64)
    assert_error(refused, 409, "args_mismatch")
    await eventually(lambda: sec.run(run["run_id"]), lambda r: r["tools"][1]["state"] == "EXPIRED")
    minted = await sec.mint("alice", purge)
    assert minted.status_code == 201, minted.text
    done = await sec.redeem(minted.json()["token"])
    assert done.json()["status"] == "COMPLETED", done.text

    events = await sec.audit(run["run_id"])

    def one(kind: str, call: dict[str, object] | None = None) -> dict[str, object]:
        [event] = [
            e
            for e in events
            if e["kind"] == kind and (call is None or e["tool_call_id"] == call["tool_call_id"])
        ]
        return event

    started = one("run.started")
    assert started["principal"] == {"id": "key:rita", "roles": ["requester"]}
    requested = [e for e in events if e["kind"] == "approval.requested"]
    assert {e["tool_call_id"] for e in requested} == {purge["tool_call_id"], hurry["tool_call_id"]}
    refusal = one("approval.refused", purge)
    assert (refusal["principal"]["id"], refusal["source"]) == ("jwt:-:alice", "api")  # type: ignore[index]
    assert str(refusal["detail"]).startswith("args_mismatch: ")
    expired = one("approval.expired", hurry)
    assert str(expired["detail"]).startswith("denied: confirmation expired at ")
    decided = one("approval.decided", purge)
    assert (decided["principal"], decided["source"]) == (
        {"id": "jwt:-:alice", "roles": ["approver"]},
        "token",
    )
    assert one("tool.executed", purge)["detail"]
    assert one("run.finished")["data"] == {"status": "COMPLETED"}
    # The readers that may see the run see the same trail; others do not learn it exists.
    as_owner = await sec.http.get(
        f"/agents/sec_ops/runs/{run['run_id']}/audit", headers=sec.auth("rita")
    )
    assert as_owner.json()["events"] == events
    as_other = await sec.http.get(
        f"/agents/sec_ops/runs/{run['run_id']}/audit", headers=sec.auth("rick")
    )
    assert_error(as_other, 404, "unknown_run")


async def test_history_scan_finds_a_planted_value(sec: Secure, model: ScriptedModel) -> None:
    planted = f"planted-{uuid.uuid4().hex}"
    run = await sec.start(model, "rita", f"say {planted}", Call("purge", {"target": "t"}))

    histories = await histories_on(sec.client, sec.settings.temporal_task_queue, {run["run_id"]})

    # The scan that guards every test is not vacuous: a value that is there is found.
    assert [where for where, _ in leaks(histories, {planted})] == [workflow_id(run["run_id"])]
