"""The scale figure: many runs paused at once on one worker, with bounded memory.

``paused`` runs are created through the API and left waiting; the worker's
resident memory is read from ``/proc`` as their number grows. Its workflow
cache (``--cache``) is smaller than the number of runs, so memory should
follow the cache, not the runs. Then every pending approval is listed through
the approvals inbox (``GET /approvals``, page by page) and each listed one is
approved (``POST /approvals/{id}/approve``) until its run completes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from bench.flows import AGENT_ID, CountersignSide, FlowError, in_lanes
from bench.procs import poll_until, rss_mib
from bench.stack import Stack
from countersign import search_attributes as sa

logger = logging.getLogger("bench")

RSS_SAMPLES = 5
PAGE = 100
VISIBILITY_TIMEOUT = 300.0


async def _list_pending(api: httpx.AsyncClient) -> list[str]:
    ids: list[str] = []
    token: str | None = None
    while True:
        params = {"status": "pending", "agent_id": AGENT_ID, "limit": str(PAGE)}
        if token:
            params["page_token"] = token
        response = await api.get("/approvals", params=params)
        if response.status_code != httpx.codes.OK:
            raise FlowError(f"listing failed: {response.status_code} {response.text}")
        page = response.json()
        ids += [a["approval_id"] for a in page["approvals"]]
        token = page.get("next_page_token")
        if not token:
            return ids


async def hold_paused(
    stack: Stack, side: CountersignSide, paused: int, concurrency: int, *, worker_cache: int
) -> dict[str, Any]:
    """Pause ``paused`` runs, sample the worker's memory, then list and approve them all."""
    worker = stack.pid("worker")
    rss = [[0, round(rss_mib(worker), 1)]]
    step = max(paused // RSS_SAMPLES, 1)
    created = 0

    async def create(_: int) -> None:
        await side.create()

    start = time.perf_counter()
    while created < paused:
        batch = min(step, paused - created)
        await in_lanes(batch, concurrency, create)
        created += batch
        rss.append([created, round(rss_mib(worker), 1)])
        logger.info("%d runs paused, worker RSS %.0f MiB", created, rss[-1][1])
    create_seconds = time.perf_counter() - start

    # The bench's own readiness check, not the inbox's query: the figure is
    # the inbox listing them, once visibility has them all.
    query = f"{sa.PENDING_APPROVALS.name} > 0 AND ExecutionStatus = 'Running'"

    async def all_visible() -> bool:
        return (await stack.client.count_workflows(query)).count >= paused

    # Visibility trails the runs; the inbox reads it.
    await poll_until(all_visible, within=VISIBILITY_TIMEOUT, what="visibility", interval=0.5)
    start = time.perf_counter()
    listed = await _list_pending(side.api)
    list_seconds = time.perf_counter() - start
    rss_listed = round(rss_mib(worker), 1)

    async def approve(i: int) -> None:
        response = await side.api.post(
            f"/approvals/{listed[i]}/approve", json={"user_id": "bench-approver"}
        )
        if response.status_code != httpx.codes.OK or response.json()["status"] != "COMPLETED":
            raise FlowError(f"approval failed: {response.status_code} {response.text}")

    decide_seconds = await in_lanes(len(listed), concurrency, approve)
    stack.processes.check_alive()
    return {
        "paused_runs": paused,
        "worker_cache": worker_cache,
        "create_seconds": round(create_seconds, 3),
        "worker_rss_mib_by_paused_runs": rss,
        "listed": len(set(listed)),
        "list_seconds": round(list_seconds, 3),
        "worker_rss_mib_after_listing": rss_listed,
        "decided": len(listed),
        "decide_seconds": round(decide_seconds, 3),
        "worker_rss_mib_after_deciding": round(rss_mib(worker), 1),
    }
