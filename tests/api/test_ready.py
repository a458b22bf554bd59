"""``GET /ready``: 200 only when Temporal answers and a worker polls the task queue.

Against the session's real Temporal dev server and the product's worker; a
client pointed at a closed port stands for Temporal being down.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.routes import health
from tests.api.conftest import Api, api_for, api_settings, assert_error, eventually
from tests.conftest import RunningWorker, run_worker, temporal_cli
from tests.ops.helpers import free_port
from tests.scripted_openai import ScriptedModel


async def _ready(api: Api) -> httpx.Response:
    return await api.http.get("/ready")


async def _pollers(client: Client, task_queue: str) -> int:
    """How many pollers the server lists on the workflow task queue."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(response.pollers)


async def test_ready_when_a_worker_polls(api: Api, worker: RunningWorker) -> None:
    # The worker's first poll reaches the server shortly after it starts.
    response = await eventually(lambda: _ready(api), lambda r: r.status_code == 200)
    body = response.json()
    assert body == {
        "status": "ready",
        "namespace": "default",
        "task_queue": worker.task_queue,
        "workers": 1,
    }


async def test_not_ready_while_no_worker_polls_the_queue(
    client: Client, model: ScriptedModel, tmp_path: Path
) -> None:
    settings = api_settings(model, tmp_path, f"tq-idle-{uuid.uuid4()}")
    api = api_for(settings, client)
    async with api.http:
        response = await _ready(api)
        detail = assert_error(response, 503, "worker_unavailable")
        assert settings.temporal_task_queue in detail
        assert response.headers["Retry-After"]
        # Liveness is another question: the process is fine.
        health_response = await api.http.get("/health")
        assert health_response.status_code == 200
        assert health_response.json()["temporal"] == "reachable"


async def test_not_ready_when_temporal_is_unreachable(model: ScriptedModel, tmp_path: Path) -> None:
    closed = f"127.0.0.1:{free_port()}"
    settings = api_settings(model, tmp_path, "tq-unreachable", temporal_address=closed)
    api = api_for(settings, client=None)
    async with api.app.router.lifespan_context(api.app), api.http:
        response = await _ready(api)
        assert_error(response, 503, "temporal_unavailable")
        health_response = await api.http.get("/health")
        assert health_response.status_code == 200
        assert health_response.json()["temporal"] == "unreachable"


async def test_not_ready_within_budget_when_temporal_accepts_but_never_answers(
    model: ScriptedModel, tmp_path: Path
) -> None:
    # A black hole: the port accepts connections and never says a word, as a
    # wedged server or a dropped network path would. /ready must still answer.
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = api_settings(model, tmp_path, "tq-black-hole", temporal_address=f"127.0.0.1:{port}")
    api = api_for(settings, client=None)
    try:
        async with api.http:
            detail = assert_error(await _ready(api), 503, "temporal_unavailable")
            assert "no answer within" in detail
            # Liveness stays 200 and answers within a probe's timeout (the
            # SDK's own connect timeout is about 30 s; a kubelet waits 5).
            health_response = await asyncio.wait_for(api.http.get("/health"), timeout=10)
            assert health_response.status_code == 200
            assert health_response.json()["temporal"] == "unreachable"
    finally:
        server.close()


async def test_not_ready_when_temporal_goes_away_after_connecting(
    model: ScriptedModel, tmp_path: Path
) -> None:
    # A server of this test's own, so stopping it harms no other test.
    server = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), port=free_port()
    )
    settings = api_settings(model, tmp_path, f"tq-gone-{uuid.uuid4()}")
    api = api_for(settings, server.client)
    async with api.http:
        # Connected: the check that fails is the worker one.
        assert_error(await _ready(api), 503, "worker_unavailable")
        await server.shutdown()
        response = await eventually(
            lambda: _ready(api), lambda r: r.json()["code"] == "temporal_unavailable"
        )
        assert_error(response, 503, "temporal_unavailable")


async def test_not_ready_when_temporal_refuses_the_namespace(
    client: Client, model: ScriptedModel, tmp_path: Path
) -> None:
    # Reachable but misconfigured (a namespace that does not exist, or an API
    # key without access): not ready, and the detail says what Temporal said.
    target = client.service_client.config.target_host
    elsewhere = await Client.connect(target, namespace="no-such-namespace")
    settings = api_settings(model, tmp_path, f"tq-nons-{uuid.uuid4()}")
    api = api_for(settings, elsewhere)
    async with api.http:
        detail = assert_error(await _ready(api), 503, "temporal_unavailable")
        assert "refused" in detail
        assert "no-such-namespace" in detail


async def test_not_ready_once_the_last_worker_has_stopped(
    client: Client, model: ScriptedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = api_settings(model, tmp_path, f"tq-stops-{uuid.uuid4()}")
    api = api_for(settings, client)
    async with api.http:
        async with run_worker(client, settings):
            await eventually(lambda: _ready(api), lambda r: r.status_code == 200)
        # The server keeps listing a stopped worker's poller for minutes; only
        # the age of its last poll tells. Shrink the window so the test need
        # not wait out the real one.
        monkeypatch.setattr(health, "POLLER_FRESHNESS", timedelta(seconds=1))
        response = await eventually(lambda: _ready(api), lambda r: r.status_code == 503)
        assert_error(response, 503, "worker_unavailable")


async def test_ready_answers_from_its_cache_between_checks(
    client: Client, model: ScriptedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cache that never expires: the answer must not change whatever happens.
    monkeypatch.setattr(health, "READY_CACHE_SECONDS", 3600.0)
    settings = api_settings(model, tmp_path, f"tq-cache-{uuid.uuid4()}")
    api = api_for(settings, client)
    async with api.http:
        assert_error(await _ready(api), 503, "worker_unavailable")
        async with run_worker(client, settings):
            # Temporal itself sees the worker polling: the cached answer must not change.
            await eventually(lambda: _pollers(client, settings.temporal_task_queue), bool)
            assert_error(await _ready(api), 503, "worker_unavailable")
            # Once the cached answer is old enough, the next probe checks again.
            monkeypatch.setattr(health, "READY_CACHE_SECONDS", 0.0)
            await eventually(lambda: _ready(api), lambda r: r.status_code == 200)


async def test_ready_needs_no_credentials_and_is_not_rate_limited(
    client: Client, model: ScriptedModel, tmp_path: Path
) -> None:
    settings = api_settings(
        model, tmp_path, f"tq-open-{uuid.uuid4()}", auth_disabled=False, rate_limit_per_minute=1
    )
    api = api_for(settings, client)
    async with api.http:
        # Authentication is on and the budget is one request a minute: probes
        # still get the readiness answer, never 401 or 429.
        for _ in range(3):
            assert_error(await _ready(api), 503, "worker_unavailable")
        assert_error(await api.http.get("/agents"), 401, "unauthenticated")
