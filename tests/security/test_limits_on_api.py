"""The body size guard mounted on the real API: 413 on big bodies, SSE unharmed."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
from fastapi import FastAPI
from temporalio.client import Client

from api.main import create_app
from countersign.client import workflow_id
from tests.api.conftest import assert_error
from tests.conftest import RunningWorker, make_settings
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.security.conftest import SecureFactory
from tests.security.live import serving

SEED_MESSAGE = "Delete 50 old records from the users table"


def guarded_app(
    client: Client, worker: RunningWorker, model: ScriptedModel, tmp_path: Path
) -> FastAPI:
    """The real API with a small body limit (``create_app`` mounts the guard)."""
    settings = make_settings(
        model, tmp_path, worker.task_queue, auth_disabled=True, max_body_bytes=4096
    )
    return create_app(settings, client)


async def test_body_limit_on_api_413_and_no_run_started(
    client: Client, worker: RunningWorker, model: ScriptedModel, tmp_path: Path
) -> None:
    session = uuid.uuid4().hex
    app = guarded_app(client, worker, model, tmp_path)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.post(
            "/agents/data_manager/runs",
            data={"message": "x" * 5000, "session_id": session},
        )
        runs = await http.get("/agents/data_manager/runs", params={"session_id": session})

    assert response.status_code == 413
    assert response.json() == {
        "detail": "request body exceeds 4096 bytes",
        "code": "payload_too_large",
    }
    assert runs.status_code == 200
    assert runs.json()["runs"] == []
    assert model.requests == []


async def test_body_limit_on_api_streams_sse(
    client: Client, worker: RunningWorker, model: ScriptedModel, tmp_path: Path
) -> None:
    model.script(
        SEED_MESSAGE, Reply(calls=[Call("delete_records", {"table_name": "users", "count": 50})])
    )
    app = guarded_app(client, worker, model, tmp_path)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.post(
            "/agents/data_manager/runs",
            data={"message": SEED_MESSAGE, "stream": "true", "user_id": "u"},
        )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "event: RunStarted" in response.text
    assert "event: RunPaused" in response.text
    # Leave no paused run behind for later tests' inbox listings.
    [run_id] = set(re.findall(r'"run_id":\s*"([0-9a-f]+)"', response.text))
    await client.get_workflow_handle(workflow_id(run_id)).terminate("test cleanup")


# ------------------------------------------------------------ with auth on


async def test_rate_limit_per_principal_and_route_429(
    secure_api: SecureFactory, model: ScriptedModel
) -> None:
    async with secure_api(rate_limit_per_minute=2) as sec:
        allowed = [
            (await sec.http.get("/agents", headers=sec.auth("rita"))).status_code for _ in range(2)
        ]
        limited = await sec.http.get("/agents", headers=sec.auth("rita"))
        other_principal = await sec.http.get("/agents", headers=sec.auth("vera"))
        other_route = await sec.http.get("/agents/sec_ops", headers=sec.auth("rita"))
        health = [(await sec.http.get("/health")).status_code for _ in range(4)]

    assert allowed == [200, 200]
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert other_principal.status_code == 200
    assert other_route.status_code == 200
    assert health == [200] * 4


async def test_rate_limit_decision_refused_run_unchanged(
    secure_api: SecureFactory, model: ScriptedModel
) -> None:
    async with secure_api(rate_limit_per_minute=1, rate_limit_roles={}) as sec:
        run = await sec.start(model, "rita", "limited purge", Call("purge", {"target": "t"}))
        call = run["tools"][0]
        first = await sec.approve("alice", call, args_digest="0" * 64)
        second = await sec.approve("alice", call)
        after = await sec.run(run["run_id"])

    assert_error(first, 409, "args_mismatch")
    assert_error(second, 429, "rate_limited")
    assert after == run


async def test_failed_logins_limited_per_address_429(
    secure_api: SecureFactory, model: ScriptedModel
) -> None:
    async with secure_api(rate_limit_per_minute=2) as sec:
        bad = {"Authorization": "Bearer csk_0123456789abcdef_" + "x" * 43}
        refused = [await sec.http.get("/agents", headers=bad) for _ in range(2)]
        limited = await sec.http.get("/agents", headers=bad)

    for response in refused:
        assert_error(response, 401, "unauthenticated")
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1


async def test_token_route_limited_per_address_429(
    secure_api: SecureFactory, model: ScriptedModel
) -> None:
    async with secure_api(rate_limit_per_minute=1) as sec:
        first = await sec.redeem("v1.not.valid")
        second = await sec.redeem("v1.not.valid")

    assert_error(first, 401, "token_malformed")
    assert_error(second, 429, "rate_limited")


async def test_body_limit_with_auth_413_before_authentication(
    secure_api: SecureFactory, model: ScriptedModel
) -> None:
    async with secure_api(max_body_bytes=1024) as sec:
        anonymous = await sec.http.post("/agents/sec_ops/runs", data={"message": "x" * 2000})
        as_rita = await sec.http.post(
            "/agents/sec_ops/runs", data={"message": "x" * 2000}, headers=sec.auth("rita")
        )

    assert_error(anonymous, 413, "payload_too_large")
    assert_error(as_rita, 413, "payload_too_large")
    assert model.requests == []


async def test_message_over_limit_422_no_run(
    secure_api: SecureFactory, model: ScriptedModel
) -> None:
    async with secure_api(max_message_chars=10) as sec:
        response = await sec.http.post(
            "/agents/sec_ops/runs", data={"message": "x" * 11}, headers=sec.auth("rita")
        )

    assert "message: at most 10 characters" in assert_error(response, 422, "invalid_request")
    assert model.requests == []


async def test_too_many_decisions_422_unchanged(
    secure_api: SecureFactory, model: ScriptedModel
) -> None:
    async with secure_api(max_decisions_per_request=1) as sec:
        run = await sec.start(
            model,
            "rita",
            "two purges",
            Call("purge", {"target": "a"}),
            Call("purge", {"target": "b"}),
        )
        response = await sec.http.post(
            f"/agents/sec_ops/runs/{run['run_id']}/continue",
            json={
                "tools": [
                    {"tool_call_id": t["tool_call_id"], "confirmed": True} for t in run["tools"]
                ]
            },
            headers=sec.auth("alice"),
        )
        after = await sec.run(run["run_id"])

    assert "at most 1 decisions" in assert_error(response, 422, "invalid_request")
    assert after == run
