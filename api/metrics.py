"""Prometheus metrics of the API and the ``/metrics`` route that serves them.

The metrics live in a registry of their own (:data:`REGISTRY`), so the
exposition holds Countersign's metrics only, and the worker's SDK metrics are
scraped from the worker (``COUNTERSIGN_WORKER_METRICS_PORT``).

Wiring, in the app factory (``state`` is the app's ``AppState``)::

    app.add_middleware(metrics.RequestMetricsMiddleware)
    app.include_router(metrics.metrics_router(metrics.pending_approvals_counter(state.ensure_client)))

and, where decisions are sent, :func:`observe_decisions` /
:func:`record_refused_decisions`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from api.visibility import pending_approvals_query
from countersign.models import DecisionInput

logger = logging.getLogger("countersign.api.metrics")

REGISTRY = CollectorRegistry()
"""Countersign's API metrics; what ``/metrics`` exposes."""

PENDING_REFRESH_TIMEOUT = 2.0
"""Seconds a scrape waits for the visibility count before it reports NaN."""

# The approve → answer round trip of a run paused for a person: tens of ms to a minute.
_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class DecisionOutcome(StrEnum):
    """What became of one decision sent through the API."""

    APPROVED = "approved"
    REJECTED = "rejected"
    REFUSED = "refused"
    """The workflow's validator refused it (expired, already decided, wrong role...)."""


PENDING_APPROVALS = Gauge(
    "countersign_pending_approvals",
    "Runs paused waiting for at least one decision (Temporal visibility, read at each scrape; "
    "NaN when Temporal did not answer).",
    registry=REGISTRY,
)
DECISIONS = Counter(
    "countersign_decisions",
    "Decisions received by the API, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
DECISION_LATENCY = Histogram(
    "countersign_decision_latency_seconds",
    "Seconds from receiving accepted decisions to answering with the settled run.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "countersign_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_REQUEST_DURATION = Histogram(
    "countersign_http_request_duration_seconds",
    "Seconds to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

for _outcome in DecisionOutcome:
    # Every outcome appears from the first scrape, at 0, so rates are defined.
    DECISIONS.labels(outcome=_outcome.value)

PendingApprovalsSource = Callable[[], Awaitable[int]]
"""Returns the number of runs waiting for a decision."""


def observe_decisions(decisions: Sequence[DecisionInput], seconds: float) -> None:
    """Count accepted decisions (approved or rejected) and time their round trip.

    Args:
        decisions: The decisions of one request that the workflow accepted.
        seconds: From receiving the request to having the settled run.
    """
    for decision in decisions:
        outcome = DecisionOutcome.APPROVED if decision.confirmed else DecisionOutcome.REJECTED
        DECISIONS.labels(outcome=outcome.value).inc()
    DECISION_LATENCY.observe(seconds)


def record_refused_decisions(count: int = 1) -> None:
    """Count decisions the workflow refused (the request changed nothing)."""
    DECISIONS.labels(outcome=DecisionOutcome.REFUSED.value).inc(count)


async def count_pending_approvals(client: Client) -> int:
    """Open runs with at least one call awaiting a decision, from visibility."""
    return (await client.count_workflows(pending_approvals_query(None, None))).count


def pending_approvals_counter(
    get_client: Callable[[], Awaitable[Client]],
) -> PendingApprovalsSource:
    """A source for :func:`metrics_router` that counts through a client got at each scrape.

    Args:
        get_client: Returns the shared client, connecting if needed (the
            API's ``AppState.ensure_client``).
    """

    async def count() -> int:
        return await count_pending_approvals(await get_client())

    return count


async def refresh_pending_approvals(source: PendingApprovalsSource) -> None:
    """Set the pending-approvals gauge from ``source``; NaN when it fails or is slow."""
    try:
        value = float(await asyncio.wait_for(source(), PENDING_REFRESH_TIMEOUT))
    except Exception:
        # A scrape must still answer: the other metrics are worth having.
        logger.warning("could not count pending approvals", exc_info=True)
        value = float("nan")
    PENDING_APPROVALS.set(value)


def metrics_router(pending_approvals: PendingApprovalsSource | None = None) -> APIRouter:
    """A router with ``GET /metrics`` in the Prometheus text format.

    Args:
        pending_approvals: Counts the runs waiting for a decision at each
            scrape; without it the gauge stays as the process last set it.
    """
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        if pending_approvals is not None:
            await refresh_pending_approvals(pending_approvals)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router


class RequestMetricsMiddleware:
    """ASGI middleware counting and timing HTTP requests by route template.

    The route template (``/agents/{agent_id}/runs``), not the path, labels
    the series, so their number stays bounded. Requests that match no route
    are labelled ``<unmatched>``.
    """

    def __init__(self, app: ASGIApp) -> None:
        """Wrap ``app``."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request and record its status and duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = str(getattr(route, "path", "<unmatched>"))
            method = str(scope.get("method", ""))
            HTTP_REQUESTS.labels(method=method, route=template, status=str(status)).inc()
            HTTP_REQUEST_DURATION.labels(method=method, route=template).observe(
                time.perf_counter() - started
            )
