"""Every refusal: its status, its stable code, and the run left as it was."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client

from api.decisions import DecisionAttempt
from api.errors import ApiError
from api.schemas import ContinueToolEntry
from countersign.client import RunClient
from countersign.models import Principal
from tests.api.conftest import Api, assert_error, eventually
from tests.scripted_openai import Call, ScriptedModel


def decision(call: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The AgentOS short form for one call of a run body."""
    entry = {
        "tool_call_id": call["tool_call_id"],
        "tool_name": call["tool_name"],
        "tool_args": call["tool_args"],
        "confirmed": True,
    }
    entry.update(changes)
    return entry


async def assert_unchanged(api: Api, run: dict[str, Any]) -> None:
    """The run reads exactly as it did when it paused."""
    assert await api.get_run(run["run_id"], run["agent_id"]) == run


# ------------------------------------------------------------- unknown things


async def test_create_run_unknown_agent(api: Api) -> None:
    response = await api.http.post("/agents/nope/runs", data={"message": "hi"})
    assert_error(response, 404, "unknown_agent")


async def test_continue_unknown_agent_leaves_run(api: Api, model: ScriptedModel) -> None:
    run = await api.start_seed_run(model)
    response = await api.http.post(
        f"/agents/nope/runs/{run['run_id']}/continue",
        data={"tools": json.dumps([decision(run["tools"][0])])},
    )
    assert_error(response, 404, "unknown_agent")
    await assert_unchanged(api, run)


async def test_read_run_unknown_run(api: Api) -> None:
    response = await api.http.get("/agents/data_manager/runs/0123456789abcdef")
    assert_error(response, 404, "unknown_run")


async def test_continue_unknown_run(api: Api) -> None:
    response = await api.http.post(
        "/agents/data_manager/runs/0123456789abcdef/continue",
        data={"tools": json.dumps([{"tool_call_id": "x", "confirmed": True}])},
    )
    assert_error(response, 404, "unknown_run")


async def test_read_run_of_another_agent_is_unknown(api: Api, model: ScriptedModel) -> None:
    run = await api.start_seed_run(model)
    response = await api.http.get(f"/agents/api_ops/runs/{run['run_id']}")
    assert_error(response, 404, "unknown_run")
    continued = await api.http.post(
        f"/agents/api_ops/runs/{run['run_id']}/continue",
        data={"tools": json.dumps([decision(run["tools"][0])])},
    )
    assert_error(continued, 404, "unknown_run")
    await assert_unchanged(api, run)


async def test_continue_unknown_tool_call(api: Api, model: ScriptedModel) -> None:
    run = await api.start_seed_run(model)
    response = await api.continue_run(run, [{"tool_call_id": "call_nope", "confirmed": True}])
    assert_error(response, 404, "unknown_tool_call")
    await assert_unchanged(api, run)


# ------------------------------------------------------------ malformed input


async def test_create_run_missing_message(api: Api) -> None:
    response = await api.http.post("/agents/data_manager/runs", data={"user_id": "test_user"})
    detail = assert_error(response, 422, "invalid_request")
    assert detail.startswith("message:")


async def test_create_run_body_not_json(api: Api) -> None:
    response = await api.http.post(
        "/agents/data_manager/runs",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    detail = assert_error(response, 422, "invalid_request")
    assert "not valid JSON" in detail


@pytest.mark.parametrize(
    ("tools", "where"),
    [
        ("[{not json", "tools: not valid JSON"),
        ('{"tool_call_id": "x", "confirmed": true}', "tools: must be a JSON array"),
        ('["x"]', "tools.0: must be an object"),
    ],
)
async def test_continue_tools_malformed(
    api: Api, model: ScriptedModel, tools: str, where: str
) -> None:
    run = await api.start_seed_run(model)
    response = await api.http.post(
        f"/agents/data_manager/runs/{run['run_id']}/continue",
        data={"tools": tools, "session_id": "test_session"},
    )
    detail = assert_error(response, 422, "invalid_request")
    assert detail.startswith(where)
    await assert_unchanged(api, run)


async def test_continue_tools_missing(api: Api, model: ScriptedModel) -> None:
    run = await api.start_seed_run(model)
    response = await api.http.post(
        f"/agents/data_manager/runs/{run['run_id']}/continue", data={"session_id": "test_session"}
    )
    detail = assert_error(response, 422, "invalid_request")
    assert detail.startswith("tools: field required")
    await assert_unchanged(api, run)


@pytest.mark.parametrize("confirmed", ["missing", None, "yes", 1])
async def test_continue_confirmed_not_boolean(
    api: Api, model: ScriptedModel, confirmed: object
) -> None:
    run = await api.start_seed_run(model)
    entry = decision(run["tools"][0])
    if confirmed == "missing":
        del entry["confirmed"]
    else:
        entry["confirmed"] = confirmed
    response = await api.continue_run(run, [entry])
    detail = assert_error(response, 422, "invalid_request")
    assert detail.startswith("tools.0.confirmed:")
    await assert_unchanged(api, run)


async def test_continue_same_call_twice(api: Api, model: ScriptedModel) -> None:
    run = await api.start_seed_run(model)
    entry = decision(run["tools"][0])
    response = await api.continue_run(run, [entry, entry])
    assert_error(response, 422, "duplicate_tool_call")
    await assert_unchanged(api, run)


async def test_continue_empty_tools(api: Api, model: ScriptedModel) -> None:
    run = await api.start_seed_run(model)
    response = await api.continue_run(run, [])
    assert_error(response, 422, "empty_decision")
    await assert_unchanged(api, run)


# ------------------------------------------------ bound to what was shown


async def test_continue_tool_name_mismatch(api: Api, model: ScriptedModel) -> None:
    run = await api.start_seed_run(model)
    response = await api.continue_run(
        run, [decision(run["tools"][0], tool_name="send_notification")]
    )
    assert_error(response, 422, "tool_name_mismatch")
    await assert_unchanged(api, run)


async def test_continue_args_mismatch(api: Api, model: ScriptedModel) -> None:
    run = await api.start_seed_run(model)
    response = await api.continue_run(
        run, [decision(run["tools"][0], tool_args={"table_name": "users", "count": 5000})]
    )
    assert_error(response, 409, "args_mismatch")
    await assert_unchanged(api, run)


async def test_continue_digest_mismatch(api: Api, model: ScriptedModel) -> None:
    run = await api.start_seed_run(model)
    response = await api.continue_run(run, [decision(run["tools"][0], args_digest="0" * 64)])
    assert_error(response, 409, "args_mismatch")
    await assert_unchanged(api, run)


async def test_continue_edited_args_invalid(api: Api, model: ScriptedModel) -> None:
    run = await api.start_run(
        model, "resize big", Call("resize_volume", {"volume": "v1", "size_gb": 10})
    )
    response = await api.continue_run(
        run, [decision(run["tools"][0], tool_args={"volume": "v1", "size_gb": 5000})]
    )
    detail = assert_error(response, 422, "invalid_tool_args")
    assert "tools.0.tool_args" in detail and "size_gb" in detail
    await assert_unchanged(api, run)


# ----------------------------------------------------------- wrong moment


async def test_continue_session_mismatch(api: Api, model: ScriptedModel) -> None:
    run = await api.start_seed_run(model)
    response = await api.continue_run(
        run, [decision(run["tools"][0])], session_id="someone_elses_session"
    )
    assert_error(response, 409, "session_mismatch")
    await assert_unchanged(api, run)


async def test_continue_finished_run_not_paused(api: Api, model: ScriptedModel) -> None:
    run = await api.start_seed_run(model)
    entry = decision(run["tools"][0])
    done = await api.continue_run(run, [entry])
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "COMPLETED"
    response = await api.continue_run(run, [entry])
    assert_error(response, 409, "not_paused")
    assert await api.get_run(run["run_id"]) == done.json()


async def test_continue_already_decided(api: Api, model: ScriptedModel) -> None:
    run = await api.start_run(
        model,
        "two at once",
        Call("resize_volume", {"volume": "v1", "size_gb": 10}),
        Call("resize_volume", {"volume": "v2", "size_gb": 20}),
    )
    first, _ = run["tools"]
    partial = await api.continue_run(run, [decision(first, confirmed=False, note="no")])
    assert partial.status_code == 200, partial.text
    after_first = partial.json()
    assert after_first["status"] == "PAUSED"
    response = await api.continue_run(run, [decision(first)])
    detail = assert_error(response, 409, "already_decided")
    assert "test_user" in detail
    await assert_unchanged(api, after_first)


async def test_continue_call_not_awaiting_confirmation(api: Api, model: ScriptedModel) -> None:
    run = await api.start_run(
        model,
        "look then resize",
        Call("lookup", {"key": "size"}),
        Call("resize_volume", {"volume": "v1", "size_gb": 10}),
    )
    looked_up = next(t for t in run["tools"] if t["tool_name"] == "lookup")
    assert looked_up["state"] == "EXECUTED"
    response = await api.continue_run(run, [decision(looked_up)])
    assert_error(response, 409, "not_awaiting_confirmation")
    await assert_unchanged(api, run)


async def test_continue_expired_confirmation(api: Api, model: ScriptedModel) -> None:
    run = await api.start_run(
        model,
        "fuse and resize",
        Call("short_fuse", {"target": "t1"}),
        Call("resize_volume", {"volume": "v1", "size_gb": 10}),
    )

    async def read() -> dict[str, Any]:
        return await api.get_run(run["run_id"], "api_ops")

    expired = await eventually(read, lambda r: r["tools"][0]["state"] == "EXPIRED")
    assert expired["status"] == "PAUSED"
    response = await api.continue_run(run, [decision(expired["tools"][0])])
    assert_error(response, 410, "confirmation_expired")
    await assert_unchanged(api, expired)


# ------------------------------------------------------------- right person


async def test_continue_self_approval_forbidden(api: Api, model: ScriptedModel) -> None:
    run = await api.start_run(model, "wire it", Call("wire_money", {"amount": 100}))
    response = await api.continue_run(run, [decision(run["tools"][0])], user_id="test_user")
    assert_error(response, 403, "self_approval_forbidden")
    await assert_unchanged(api, run)


async def test_continue_same_approver_twice(api: Api, model: ScriptedModel) -> None:
    run = await api.start_run(model, "wire more", Call("wire_money", {"amount": 200}))
    once = await api.continue_run(run, [decision(run["tools"][0])], user_id="alice")
    assert once.status_code == 200, once.text
    after_alice = once.json()
    assert after_alice["status"] == "PAUSED"
    assert [d["principal_id"] for d in after_alice["tools"][0]["decisions"]] == ["dev:alice"]
    response = await api.continue_run(run, [decision(run["tools"][0])], user_id="alice")
    assert_error(response, 409, "already_approved_by_principal")
    await assert_unchanged(api, after_alice)


# ---------------------------------------------------------------- audit


async def test_refused_decision_recorded_in_audit(api: Api, model: ScriptedModel) -> None:
    run = await api.start_seed_run(model)
    response = await api.continue_run(run, [{"tool_call_id": "call_nope", "confirmed": True}])
    assert_error(response, 404, "unknown_tool_call")

    async def audit() -> dict[str, Any]:
        got = await api.http.get(f"/agents/data_manager/runs/{run['run_id']}/audit")
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body

    trail = await eventually(
        audit, lambda t: any(e["kind"] == "approval.refused" for e in t["events"])
    )
    refused = next(e for e in trail["events"] if e["kind"] == "approval.refused")
    assert refused["data"]["code"] == "unknown_tool_call"
    assert refused["principal"]["id"] == "dev:test_user"
    assert trail["chain_intact"] is True
    await assert_unchanged(api, run)


async def test_decide_race_with_finished_run_not_paused(
    api: Api, model: ScriptedModel, client: Client
) -> None:
    # Another API instance read the run while paused; it completes before this one decides.
    run = await api.start_seed_run(model)
    stale = await RunClient.of(client, run["run_id"]).view()
    done = await api.continue_run(run, [decision(run["tools"][0])])
    assert done.json()["status"] == "COMPLETED"
    attempt = DecisionAttempt(
        client,
        None,
        stale,
        Principal(id="late"),
        [ContinueToolEntry(tool_call_id=run["tools"][0]["tool_call_id"], confirmed=True)],
    )
    request = await attempt.check(session_id=None, max_decisions=10)
    with pytest.raises(ApiError) as refused:
        await attempt.send(attempt.run.decide(request, wait=timedelta(seconds=10)))
    assert (refused.value.status_code, refused.value.code) == (409, "not_paused")
    assert await api.get_run(run["run_id"]) == done.json()
