"""Runs through the API: JSON bodies, echoed tool objects, edits, partial decisions,
the wait budget, listings, the audit trail and shutdown."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client

from tests.api.conftest import (
    SEED_ARGS,
    SEED_MESSAGE,
    Api,
    api_for,
    api_settings,
    assert_error,
    eventually,
)
from tests.conftest import RunningWorker
from tests.scripted_openai import Call, Reply, ScriptedModel


async def test_create_run_json_body(api: Api, model: ScriptedModel) -> None:
    model.script(SEED_MESSAGE, Reply(calls=[Call("delete_records", SEED_ARGS)]))
    response = await api.http.post(
        "/agents/data_manager/runs", json={"message": SEED_MESSAGE, "user_id": "bob"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "PAUSED"
    assert body["requester"] == "dev:bob"
    assert len(body["session_id"]) == 32


async def test_create_run_without_tools_completes(api: Api, model: ScriptedModel) -> None:
    model.script("just say hi", Reply(text="hi there"))
    response = await api.http.post("/agents/data_manager/runs", data={"message": "just say hi"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "COMPLETED"
    assert body["content"] == "hi there"
    assert body["tools"] == []


async def test_continue_echoed_tool_objects(
    api: Api, model: ScriptedModel, worker: RunningWorker
) -> None:
    run = await api.start_seed_run(model)
    echoed = [{**t, "confirmed": True, "note": "ok by me"} for t in run["tools"]]
    response = await api.continue_run(run, echoed, session_id="test_session")
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["status"] == "COMPLETED"
    assert done["tools"][0]["confirmation_note"] == "ok by me"
    assert worker.db.effect_count("delete_records") == 1


async def test_continue_rejected_call_does_not_run(
    api: Api, model: ScriptedModel, worker: RunningWorker
) -> None:
    run = await api.start_seed_run(model)
    call = run["tools"][0]
    response = await api.continue_run(
        run, [{"tool_call_id": call["tool_call_id"], "confirmed": False, "note": "too many"}]
    )
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["status"] == "COMPLETED"
    assert done["tools"][0]["state"] == "REJECTED"
    assert done["tools"][0]["confirmed"] is False
    assert done["tools"][0]["result"] == "rejected by dev:test_user: too many"
    assert worker.db.count("users") == 1000


async def test_continue_partial_keeps_others_pending(api: Api, model: ScriptedModel) -> None:
    run = await api.start_run(
        model,
        "resize two",
        Call("resize_volume", {"volume": "v1", "size_gb": 10}),
        Call("resize_volume", {"volume": "v2", "size_gb": 20}),
    )
    first, second = run["tools"]
    response = await api.continue_run(
        run, [{"tool_call_id": first["tool_call_id"], "confirmed": True}]
    )
    assert response.status_code == 200, response.text
    partial = response.json()
    assert partial["status"] == "PAUSED"
    assert [t["state"] for t in partial["tools"]] == ["APPROVED", "AWAITING_CONFIRMATION"]
    response = await api.continue_run(
        run, [{"tool_call_id": second["tool_call_id"], "confirmed": True}]
    )
    done = response.json()
    assert done["status"] == "COMPLETED"
    assert [t["result"] for t in done["tools"]] == ["resized v1 to 10 GB", "resized v2 to 20 GB"]


async def test_continue_edited_args_run_as_edited(api: Api, model: ScriptedModel) -> None:
    run = await api.start_run(
        model, "resize it", Call("resize_volume", {"volume": "v1", "size_gb": 10})
    )
    call = run["tools"][0]
    response = await api.continue_run(
        run,
        [
            {
                "tool_call_id": call["tool_call_id"],
                "tool_name": "resize_volume",
                "tool_args": {"volume": "v1", "size_gb": "12"},
                "confirmed": True,
            }
        ],
    )
    assert response.status_code == 200, response.text
    [tool] = response.json()["tools"]
    assert tool["tool_args"] == {"volume": "v1", "size_gb": 12}
    assert tool["decisions"][0]["edited_args"] == {"volume": "v1", "size_gb": 12}
    assert tool["result"] == "resized v1 to 12 GB"


async def test_create_run_after_wait_budget_answers_202(
    client: Client, worker: RunningWorker, model: ScriptedModel, tmp_path: Path
) -> None:
    settings = api_settings(model, tmp_path, worker.task_queue, wait_budget=0)
    api = api_for(settings, client)
    model.script(SEED_MESSAGE, Reply(calls=[Call("delete_records", SEED_ARGS)]))
    async with api.http:
        response = await api.http.post("/agents/data_manager/runs", data={"message": SEED_MESSAGE})
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] in ("RUNNING", "PAUSED")
        paused = await eventually(
            lambda: api.get_run(body["run_id"]), lambda r: r["status"] == "PAUSED"
        )
    assert paused["tools"][0]["tool_args"] == SEED_ARGS


async def test_shutdown_cancels_waiting_request(
    client: Client, worker: RunningWorker, model: ScriptedModel, tmp_path: Path
) -> None:
    # A failing model retried in a minute keeps the run RUNNING while the request waits.
    settings = api_settings(model, tmp_path, worker.task_queue, llm_retry_initial_interval=60)
    model.fail_next(500)
    api = api_for(settings, client)
    async with api.http:
        pending = asyncio.create_task(
            api.http.post("/agents/data_manager/runs", data={"message": "slow model"})
        )
        await eventually(lambda: _answered(model), bool)
        api.app.state.countersign.waits.cancel_all()
        response = await pending
    assert_error(response, 503, "shutting_down")

    async def running() -> list[str]:
        query = f"TaskQueue = '{worker.task_queue}' AND ExecutionStatus = 'Running'"
        return [e.id async for e in client.list_workflows(query)]

    [workflow_id] = await eventually(running, lambda ids: len(ids) == 1)
    await client.get_workflow_handle(workflow_id).terminate("test cleanup")


async def _answered(model: ScriptedModel) -> bool:
    return bool(model.requests_for("slow model"))


# --------------------------------------------------------------- reading


async def test_list_runs_filters_and_pages(api: Api, model: ScriptedModel) -> None:
    session = f"list-{uuid.uuid4()}"
    for text in ("first", "second", "third"):
        model.script(text, Reply(text=f"answer {text}"))
        response = await api.http.post(
            "/agents/data_manager/runs",
            data={"message": text, "session_id": session, "user_id": "lister"},
        )
        assert response.status_code == 200, response.text

    async def listing(**params: Any) -> dict[str, Any]:
        got = await api.http.get(
            "/agents/data_manager/runs", params={"session_id": session, **params}
        )
        assert got.status_code == 200, got.text
        body: dict[str, Any] = got.json()
        return body

    everything = await eventually(
        lambda: listing(status="COMPLETED"), lambda b: len(b["runs"]) == 3
    )
    assert {r["user_id"] for r in everything["runs"]} == {"lister"}
    first_page = await listing(limit=2)
    assert len(first_page["runs"]) == 2
    assert first_page["next_page_token"]
    second_page = await listing(limit=2, page_token=first_page["next_page_token"])
    ids = {r["run_id"] for r in first_page["runs"] + second_page["runs"]}
    assert ids == {r["run_id"] for r in everything["runs"]}
    assert (await listing(status="PAUSED"))["runs"] == []
    assert (await listing(user_id="someone_else"))["runs"] == []


async def test_list_runs_bad_filter(api: Api) -> None:
    response = await api.http.get("/agents/data_manager/runs", params={"status": "DONE"})
    assert_error(response, 422, "invalid_request")
    quoted = await api.http.get("/agents/data_manager/runs", params={"session_id": "a'b"})
    assert_error(quoted, 422, "invalid_request")
    token = await api.http.get("/agents/data_manager/runs", params={"page_token": "!!"})
    assert_error(token, 422, "invalid_page_token")


async def test_read_audit_trail(api: Api, model: ScriptedModel) -> None:
    run = await api.start_seed_run(model)
    call = run["tools"][0]
    await api.continue_run(run, [{"tool_call_id": call["tool_call_id"], "confirmed": True}])
    response = await api.http.get(f"/agents/data_manager/runs/{run['run_id']}/audit")
    assert response.status_code == 200, response.text
    trail = response.json()
    assert trail["chain_intact"] is True
    assert [e["kind"] for e in trail["events"]] == [
        "run.started",
        "approval.requested",
        "approval.decided",
        "tool.executed",
        "run.finished",
    ]


async def test_read_audit_unknown_run(api: Api) -> None:
    response = await api.http.get("/agents/data_manager/runs/0123456789abcdef/audit")
    assert_error(response, 404, "unknown_run")


async def test_temporal_unreachable_answers_503(model: ScriptedModel, tmp_path: Path) -> None:
    settings = api_settings(model, tmp_path, "tq-unreachable", temporal_address="127.0.0.1:1")
    api = api_for(settings, client=None)
    async with api.app.router.lifespan_context(api.app), api.http:
        health = await api.http.get("/health")
        assert health.status_code == 200
        assert health.json()["temporal"] == "unreachable"
        response = await api.http.post("/agents/data_manager/runs", data={"message": "hi"})
        assert_error(response, 503, "temporal_unavailable")
        read = await api.http.get("/agents/data_manager/runs/0123456789abcdef")
        assert_error(read, 503, "temporal_unavailable")


async def test_unknown_route_is_json_error(api: Api) -> None:
    response = await api.http.get("/nowhere")
    assert_error(response, 404, "not_found")
