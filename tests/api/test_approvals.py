"""The approvals inbox and deciding one approval by its id."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.conftest import Api, assert_error, eventually
from tests.conftest import RunningWorker
from tests.scripted_openai import Call, Reply, ScriptedModel


async def paused_run(api: Api, model: ScriptedModel, user: str, *calls: Call) -> dict[str, Any]:
    message = f"resize for {user}"
    model.script(message, Reply(calls=list(calls)))
    response = await api.http.post(
        "/agents/api_ops/runs", data={"message": message, "user_id": user}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "PAUSED"
    return body


async def inbox(api: Api, **params: str) -> list[dict[str, Any]]:
    response = await api.http.get("/approvals", params=params)
    assert response.status_code == 200, response.text
    approvals: list[dict[str, Any]] = response.json()["approvals"]
    return approvals


async def test_inbox_lists_pending_calls(api: Api, model: ScriptedModel) -> None:
    user = f"user-{uuid.uuid4()}"
    run = await paused_run(
        api,
        model,
        user,
        Call("resize_volume", {"volume": "v1", "size_gb": 10}),
        Call("wire_money", {"amount": 5}),
    )
    listed = await eventually(lambda: inbox(api, user_id=user), lambda a: len(a) == 2)
    assert {a["approval_id"] for a in listed} == {t["approval_id"] for t in run["tools"]}
    assert all(a["run_id"] == run["run_id"] and a["requester"] == f"dev:{user}" for a in listed)
    only_wires = await inbox(api, user_id=user, tool_name="wire_money")
    assert [a["tool_name"] for a in only_wires] == ["wire_money"]
    assert await inbox(api, user_id=user, agent_id="data_manager") == []


async def test_inbox_rejects_other_status(api: Api) -> None:
    response = await api.http.get("/approvals", params={"status": "decided"})
    assert_error(response, 422, "invalid_request")


async def test_read_approval(api: Api, model: ScriptedModel) -> None:
    run = await paused_run(
        api, model, "reader", Call("resize_volume", {"volume": "v1", "size_gb": 10})
    )
    [call] = run["tools"]
    response = await api.http.get(f"/approvals/{call['approval_id']}")
    assert response.status_code == 200, response.text
    approval = response.json()
    assert approval["tool_args"] == {"volume": "v1", "size_gb": 10}
    assert approval["state"] == "AWAITING_CONFIRMATION"
    assert approval["message"] == "resize for reader"
    assert approval["approvals"] == 0


async def test_approve_with_note_completes_run(
    api: Api, model: ScriptedModel, worker: RunningWorker
) -> None:
    run = await paused_run(
        api, model, "requester", Call("resize_volume", {"volume": "v1", "size_gb": 10})
    )
    [call] = run["tools"]
    response = await api.http.post(
        f"/approvals/{call['approval_id']}/approve",
        json={"note": "capacity checked", "args_digest": call["args_digest"], "user_id": "ann"},
    )
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["status"] == "COMPLETED"
    [tool] = done["tools"]
    assert tool["result"] == "resized v1 to 10 GB"
    assert tool["decisions"][0]["principal_id"] == "dev:ann"
    assert tool["decisions"][0]["note"] == "capacity checked"
    decided = await api.http.get(f"/approvals/{call['approval_id']}")
    assert decided.json()["state"] == "EXECUTED"


async def test_reject_tells_the_model(api: Api, model: ScriptedModel) -> None:
    run = await paused_run(
        api, model, "rejected", Call("resize_volume", {"volume": "v1", "size_gb": 10})
    )
    [call] = run["tools"]
    response = await api.http.post(
        f"/approvals/{call['approval_id']}/reject", data={"note": "not now", "user_id": "ann"}
    )
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["tools"][0]["state"] == "REJECTED"
    assert done["tools"][0]["result"] == "rejected by dev:ann: not now"
    assert "rejected by dev:ann: not now" in done["content"]


async def test_approve_decided_approval_not_paused(api: Api, model: ScriptedModel) -> None:
    run = await paused_run(
        api, model, "twice", Call("resize_volume", {"volume": "v1", "size_gb": 10})
    )
    [call] = run["tools"]
    first = await api.http.post(f"/approvals/{call['approval_id']}/approve")
    assert first.status_code == 200, first.text
    again = await api.http.post(f"/approvals/{call['approval_id']}/approve")
    assert_error(again, 409, "not_paused")
    assert await api.get_run(run["run_id"], "api_ops") == first.json()


async def test_approve_digest_mismatch(api: Api, model: ScriptedModel) -> None:
    run = await paused_run(
        api, model, "digest", Call("resize_volume", {"volume": "v1", "size_gb": 10})
    )
    [call] = run["tools"]
    response = await api.http.post(
        f"/approvals/{call['approval_id']}/approve", json={"args_digest": "f" * 64}
    )
    assert_error(response, 409, "args_mismatch")
    assert await api.get_run(run["run_id"], "api_ops") == run


async def test_approve_invalid_edit(api: Api, model: ScriptedModel) -> None:
    run = await paused_run(
        api, model, "editor", Call("resize_volume", {"volume": "v1", "size_gb": 10})
    )
    [call] = run["tools"]
    response = await api.http.post(
        f"/approvals/{call['approval_id']}/approve",
        json={"tool_args": {"volume": "v1", "size_gb": 0}},
    )
    assert_error(response, 422, "invalid_tool_args")
    assert await api.get_run(run["run_id"], "api_ops") == run


async def test_approval_unknown(api: Api, model: ScriptedModel) -> None:
    run = await paused_run(
        api, model, "unknown", Call("resize_volume", {"volume": "v1", "size_gb": 10})
    )
    for approval_id in ("no-colon", "0123456789abcdef:call_x", f"{run['run_id']}:call_x"):
        response = await api.http.get(f"/approvals/{approval_id}")
        assert_error(response, 404, "unknown_approval")
    missing = await api.http.post(f"/approvals/{run['run_id']}:call_x/approve")
    assert_error(missing, 404, "unknown_tool_call")
    assert await api.get_run(run["run_id"], "api_ops") == run
