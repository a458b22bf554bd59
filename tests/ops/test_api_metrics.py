"""``api/metrics.py`` over HTTP: a small FastAPI app with the metrics router and middleware.

The main app is assembled elsewhere; these tests mount exactly what it mounts.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from api import metrics
from countersign.client import RunClient, build_run_input
from countersign.models import DecisionInput, Principal, RunStatus
from tests.conftest import RunningWorker
from tests.ops.helpers import eventually
from tests.scripted_openai import Call, Reply, ScriptedModel

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class PendingSource:
    """What the app's scrape asks for the pending count; a test swaps the answer in."""

    def __init__(self) -> None:
        self.answer: Callable[[], Awaitable[int]] | None = None

    async def __call__(self) -> int:
        if self.answer is None:
            return 0
        return await self.answer()


def build_app(source: PendingSource) -> FastAPI:
    app = FastAPI()
    app.add_middleware(metrics.RequestMetricsMiddleware)
    app.include_router(metrics.metrics_router(source))

    @app.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return app


class AppServer:
    def __init__(self, base_url: str, source: PendingSource) -> None:
        self.base_url = base_url
        self.source = source

    async def scrape(self) -> Samples:
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            response = await http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }


@pytest.fixture(scope="module")
async def app_server() -> AsyncIterator[AppServer]:
    source = PendingSource()
    config = uvicorn.Config(build_app(source), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await eventually(started, within=10, what="uvicorn to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    yield AppServer(f"http://127.0.0.1:{port}", source)
    server.should_exit = True
    await serving


@pytest.fixture
def pending(app_server: AppServer) -> Iterator[PendingSource]:
    yield app_server.source
    app_server.source.answer = None


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_scrape_exposes_the_named_metrics(app_server: AppServer) -> None:
    samples = await app_server.scrape()
    names = {name for name, _ in samples}
    assert "countersign_pending_approvals" in names
    assert "countersign_decision_latency_seconds_count" in names
    for outcome in ("approved", "rejected", "refused"):
        assert ("countersign_decisions_total", (("outcome", outcome),)) in samples


async def test_requests_counted_by_route_template(app_server: AppServer) -> None:
    labels = {"method": "GET", "route": "/items/{item_id}"}
    before = await app_server.scrape()
    async with httpx.AsyncClient(base_url=app_server.base_url) as http:
        assert (await http.get("/items/1")).status_code == 200
        assert (await http.get("/items/2")).status_code == 200
        assert (await http.get("/items/not-a-number")).status_code == 422
    after = await app_server.scrape()

    def delta(name: str, **extra: str) -> float:
        return value(after, name, **labels, **extra) - value(before, name, **labels, **extra)

    assert delta("countersign_http_requests_total", status="200") == 2
    assert delta("countersign_http_requests_total", status="422") == 1
    assert delta("countersign_http_request_duration_seconds_count") == 3


async def test_unmatched_requests_share_one_label(app_server: AppServer) -> None:
    labels = {"method": "GET", "route": "<unmatched>", "status": "404"}
    before = value(await app_server.scrape(), "countersign_http_requests_total", **labels)
    async with httpx.AsyncClient(base_url=app_server.base_url) as http:
        assert (await http.get("/no/such/path/123")).status_code == 404
    after = value(await app_server.scrape(), "countersign_http_requests_total", **labels)
    assert after - before == 1


async def test_observe_decisions_counts_outcomes_and_latency(app_server: AppServer) -> None:
    before = await app_server.scrape()
    metrics.observe_decisions(
        [
            DecisionInput(tool_call_id="a", confirmed=True),
            DecisionInput(tool_call_id="b", confirmed=False),
            DecisionInput(tool_call_id="c", confirmed=True),
        ],
        0.2,
    )
    metrics.record_refused_decisions()
    after = await app_server.scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("countersign_decisions_total", outcome="approved") == 2
    assert delta("countersign_decisions_total", outcome="rejected") == 1
    assert delta("countersign_decisions_total", outcome="refused") == 1
    assert delta("countersign_decision_latency_seconds_count") == 1
    assert delta("countersign_decision_latency_seconds_bucket", le="0.25") == 1
    assert delta("countersign_decision_latency_seconds_bucket", le="0.1") == 0


async def test_pending_approvals_counts_paused_runs(
    app_server: AppServer,
    pending: PendingSource,
    client: Client,
    worker: RunningWorker,
    model: ScriptedModel,
) -> None:
    message = "Delete 7 rows from the metrics table"
    model.script(message, Reply(calls=[Call("delete_records", {"table_name": "m", "count": 7})]))
    run = build_run_input(
        worker.settings,
        agent_id="data_manager",
        message=message,
        requester=Principal(id="metrics-test", roles=("requester",)),
    )
    _, paused = await RunClient.start(
        client, run, task_queue=worker.task_queue, wait=timedelta(seconds=20)
    )
    assert paused is not None
    assert paused.status is RunStatus.PAUSED

    async def shared_client() -> Client:
        return client

    pending.answer = metrics.pending_approvals_counter(shared_client)

    async def gauge_counts_it() -> bool:
        return value(await app_server.scrape(), "countersign_pending_approvals") >= 1

    # Visibility is eventually consistent: the paused run shows up shortly.
    await eventually(gauge_counts_it, within=15, what="the paused run in the gauge")


async def test_pending_approvals_unknown_when_temporal_fails(
    app_server: AppServer, pending: PendingSource
) -> None:
    async def unreachable() -> int:
        raise RuntimeError("Temporal is down")

    pending.answer = unreachable
    samples = await app_server.scrape()
    assert math.isnan(value(samples, "countersign_pending_approvals"))
    assert ("countersign_decisions_total", (("outcome", "approved"),)) in samples
