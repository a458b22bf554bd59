"""``api/metrics.py`` over HTTP: a small FastAPI app with the metrics router and middleware.

The main app is assembled elsewhere; these tests mount exactly what it mounts.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from google.protobuf.duration_pb2 import Duration
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from api import metrics
from countersign.client import RunClient, build_run_input
from countersign.models import DecideRequest, DecisionInput, Principal, RunStatus
from devstack.temporal_server import ensure_search_attributes
from tests.conftest import make_settings, run_worker
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


@pytest.fixture
async def own_namespace(client: Client) -> Client:
    """A client on a namespace of this test's own, with the project's search attributes.

    The gauge counts a whole namespace; in the session's shared one, runs that
    earlier tests left paused would be counted too, and only an exact count
    on a namespace holding nothing but this test's runs can fail.
    """
    name = f"metrics-{uuid.uuid4().hex[:12]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    scoped = Client(client.service_client, namespace=name, data_converter=client.data_converter)

    async def usable() -> bool:
        # A new namespace reaches the frontend's cache a moment after it is registered.
        try:
            await ensure_search_attributes(scoped, name)
            await scoped.count_workflows()
        except RPCError:
            return False
        return True

    await eventually(usable, within=30, what=f"namespace {name} to be usable")
    return scoped


async def test_pending_approvals_counts_paused_runs(
    app_server: AppServer,
    pending: PendingSource,
    own_namespace: Client,
    model: ScriptedModel,
    tmp_path: Path,
) -> None:
    settings = make_settings(model, tmp_path, f"tq-{uuid.uuid4()}")

    async def scoped_client() -> Client:
        return own_namespace

    pending.answer = metrics.pending_approvals_counter(scoped_client)

    def gauge_is(expected: float) -> Callable[[], Awaitable[bool]]:
        async def probe() -> bool:
            return value(await app_server.scrape(), "countersign_pending_approvals") == expected

        return probe

    # Visibility is eventually consistent: each count shows up shortly.
    await eventually(gauge_is(0), within=15, what="an empty gauge")
    async with run_worker(own_namespace, settings):
        runs = []
        for n, calls in enumerate(([("m1", 7)], [("m2", 8), ("m3", 9)], [("m4", 10)])):
            message = f"Delete rows from the metrics tables, batch {n}"
            model.script(
                message,
                Reply(
                    calls=[Call("delete_records", {"table_name": t, "count": c}) for t, c in calls]
                ),
            )
            run = build_run_input(
                settings,
                agent_id="data_manager",
                message=message,
                requester=Principal(id="metrics-test", roles=("requester",)),
            )
            handle, paused = await RunClient.start(
                own_namespace,
                run,
                task_queue=settings.temporal_task_queue,
                wait=timedelta(seconds=20),
            )
            assert paused is not None
            assert paused.status is RunStatus.PAUSED
            runs.append((handle, paused))
        # Three paused runs, four waiting calls: the gauge counts runs.
        await eventually(gauge_is(3), within=15, what="three paused runs in the gauge")

        handle, paused = runs[0]
        call = paused.tools[0]
        decided = await handle.decide(
            DecideRequest(
                decisions=[DecisionInput(tool_call_id=call.tool_call_id, confirmed=False)],
                principal=Principal(id="metrics-approver", roles=("approver",)),
            ),
            wait=timedelta(seconds=20),
        )
        assert decided is not None
        await eventually(gauge_is(2), within=15, what="the decided run out of the gauge")
        for other, _ in runs[1:]:
            await other.handle.terminate("metrics test done")


async def test_pending_approvals_unknown_when_temporal_fails(
    app_server: AppServer, pending: PendingSource
) -> None:
    async def unreachable() -> int:
        raise RuntimeError("Temporal is down")

    pending.answer = unreachable
    samples = await app_server.scrape()
    assert math.isnan(value(samples, "countersign_pending_approvals"))
    assert ("countersign_decisions_total", (("outcome", "approved"),)) in samples
