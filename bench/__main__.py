"""Countersign benchmarks, as ratios against a bare-Temporal baseline (DESIGN §8).

Run with ``make bench`` (``python -m bench``). One dev server, one worker
process for Countersign (the offline demo model, so no network), the real API
through uvicorn on a free port, and the bare baseline on the same server in
the same run. Results are printed and written to ``bench/results/``.

Figures:
- approve → final response p50 against bare signal → result p50 (target ≤ 1.5x);
- paused runs created per second through the API against bare start-and-wait
  per second (target ≥ 0.7x);
- N runs paused at once on one worker: all listed, all decided, worker RSS
  sampled as the number of paused runs grows (bounded by its cache size);
- history events per run with one gated call, against the bare workflow's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.main import create_app
from bench.bare import BareWorkflow, bare_activity
from countersign import search_attributes as sa
from countersign.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SEED_MESSAGE = "Delete 5 old records from the users table"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _bounded(n: int, concurrency: int, job: Callable[[int], Awaitable[None]]) -> float:
    """Run ``job(i)`` for i < n with at most ``concurrency`` at once; seconds taken."""
    queue = iter(range(n))

    async def lane() -> None:
        for i in queue:
            await job(i)

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - start


class Bench:
    """Holds the server, the workers and the API for one benchmark run."""

    def __init__(self, client: Client, api: httpx.AsyncClient, task_queue: str) -> None:
        self.client = client
        self.api = api
        self.bare_queue = f"bare-{uuid.uuid4()}"
        self.task_queue = task_queue

    async def bare_start_and_wait(self, wid: str) -> None:
        op = WithStartWorkflowOperation(
            BareWorkflow.run,
            id=wid,
            task_queue=self.bare_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        await self.client.execute_update_with_start_workflow(
            BareWorkflow.ready, start_workflow_operation=op
        )

    async def bare_latency(self, samples: int) -> list[float]:
        out = []
        for _ in range(samples):
            wid = f"bare-{uuid.uuid4()}"
            await self.bare_start_and_wait(wid)
            handle = self.client.get_workflow_handle_for(BareWorkflow.run, wid)
            start = time.perf_counter()
            await handle.signal(BareWorkflow.go)
            await handle.result()
            out.append(time.perf_counter() - start)
        return out

    async def create_paused(self) -> dict[str, Any]:
        response = await self.api.post(
            "/agents/data_manager/runs",
            # A session per run: the figure is the run path, not session history reads.
            data={"message": SEED_MESSAGE, "user_id": "bench", "session_id": uuid.uuid4().hex},
        )
        body: dict[str, Any] = response.json()
        if response.status_code != 200 or body.get("status") != "PAUSED":
            raise RuntimeError(f"run did not pause: {response.status_code} {body}")
        return body

    async def approve(self, run: dict[str, Any]) -> dict[str, Any]:
        tool = run["tools"][0]
        decision = {
            "tool_call_id": tool["tool_call_id"],
            "tool_name": tool["tool_name"],
            "tool_args": tool["tool_args"],
            "confirmed": True,
        }
        response = await self.api.post(
            f"/agents/data_manager/runs/{run['run_id']}/continue",
            data={"tools": json.dumps([decision]), "user_id": "bench"},
        )
        body: dict[str, Any] = response.json()
        if response.status_code != 200 or body.get("status") != "COMPLETED":
            raise RuntimeError(f"run did not complete: {response.status_code} {body}")
        return body

    async def approve_latency(self, samples: int) -> list[float]:
        out = []
        for _ in range(samples):
            run = await self.create_paused()
            start = time.perf_counter()
            await self.approve(run)
            out.append(time.perf_counter() - start)
        return out

    async def history_events(self, workflow_id: str) -> int:
        history = await self.client.get_workflow_handle(workflow_id).fetch_history()
        return len(history.events)


def _p50(values: list[float]) -> float:
    return statistics.median(values)


async def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    temporal = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before timing
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal,
        data_converter=pydantic_data_converter,
        search_attributes=sa.ALL,
        dev_server_extra_args=[
            "--dynamic-config-value",
            "history.transferProcessorMaxPollRPS=10000",
        ],
    ) as env:
        client = env.client
        address = client.service_client.config.target_host
        task_queue = f"bench-{uuid.uuid4()}"
        worker_env = {
            **os.environ,
            "TEMPORAL_ADDRESS": address,
            "COUNTERSIGN_TASK_QUEUE": task_queue,
            "COUNTERSIGN_MODEL": "demo",
            "COUNTERSIGN_DEMO_DB": str(data_dir / f"{task_queue}.sqlite3"),
            "COUNTERSIGN_LOG_LEVEL": "WARNING",
            "COUNTERSIGN_WORKER_MAX_CACHED_WORKFLOWS": str(args.cache),
        }
        # A separate process, so that its memory can be read on its own.
        worker_proc = subprocess.Popen(  # noqa: ASYNC220 - starts once, before timing
            [sys.executable, str(ROOT / "worker.py")], env=worker_env, cwd=ROOT
        )
        settings = Settings.model_validate(
            {
                "auth_disabled": True,
                "temporal_task_queue": task_queue,
                "model_provider": "demo",
                "rate_limit_per_minute": 0,
            }
        )
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, client), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        serving = asyncio.create_task(server.serve())
        bare_worker = Worker(
            client,
            task_queue=f"bare-{task_queue}",
            workflows=[BareWorkflow],
            activities=[bare_activity],
        )
        results: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "args": vars(args)}
        try:
            async with (
                bare_worker,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as api,
            ):
                while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
                    await asyncio.sleep(0.05)
                bench = Bench(client, api, task_queue)
                bench.bare_queue = f"bare-{task_queue}"
                # Warm-up: the first runs pay for imports and caches on both sides.
                await bench.bare_latency(3)
                await bench.approve_latency(3)

                bare = await bench.bare_latency(args.samples)
                approve = await bench.approve_latency(args.samples)
                results["latency"] = {
                    "bare_signal_to_result_p50_ms": _p50(bare) * 1000,
                    "approve_to_final_p50_ms": _p50(approve) * 1000,
                    "ratio": _p50(approve) / _p50(bare),
                    "target": "<= 1.5",
                }

                n, c = args.rate_runs, args.concurrency
                bare_secs = await _bounded(
                    n, c, lambda i: bench.bare_start_and_wait(f"bare-rate-{uuid.uuid4()}")
                )
                paused: list[dict[str, Any]] = []

                async def create(i: int) -> None:
                    paused.append(await bench.create_paused())

                cs_secs = await _bounded(n, c, create)
                results["start_rate"] = {
                    "bare_start_and_wait_per_s": n / bare_secs,
                    "paused_runs_via_api_per_s": n / cs_secs,
                    "ratio": (n / cs_secs) / (n / bare_secs),
                    "target": ">= 0.7",
                }

                rss = [(0, _rss_mib(worker_proc.pid))]
                mass = args.paused
                step = max(mass // 5, 1)
                created = len(paused)
                while created < mass:
                    batch = min(step, mass - created)
                    await _bounded(batch, c, create)
                    created += batch
                    rss.append((created, _rss_mib(worker_proc.pid)))
                listed = await _count_pending(client, task_queue)
                decide_secs = await _bounded(
                    len(paused), c, lambda i: _approve_quietly(bench, paused[i])
                )
                results["mass_pause"] = {
                    "paused_runs": len(paused),
                    "listed_pending_via_visibility": listed,
                    "decided_all_in_s": decide_secs,
                    "worker_rss_mib_by_paused_runs": rss,
                }
                from countersign.runs import workflow_id

                sample = paused[0]["run_id"]
                bare_id = f"bare-hist-{uuid.uuid4()}"
                await bench.bare_start_and_wait(bare_id)
                await client.get_workflow_handle(bare_id).signal("go")
                await client.get_workflow_handle(bare_id).result()
                results["history"] = {
                    "events_per_run_one_gated_call": await bench.history_events(
                        workflow_id(sample)
                    ),
                    "events_bare_workflow": await bench.history_events(bare_id),
                }
        finally:
            server.should_exit = True
            await serving
            worker_proc.send_signal(signal.SIGTERM)
            worker_proc.wait(timeout=60)
    return results


async def _approve_quietly(bench: Bench, run: dict[str, Any]) -> None:
    await bench.approve(run)


async def _count_pending(client: Client, task_queue: str) -> int:
    # Visibility is eventually consistent: count until it stops growing.
    query = "CountersignPendingApprovals > 0"
    best, stable = -1, 0
    while stable < 3:
        count = (await client.count_workflows(query)).count
        stable = stable + 1 if count == best else 0
        best = max(best, count)
        await asyncio.sleep(0.2)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30, help="latency samples per side")
    parser.add_argument("--rate-runs", type=int, default=100, help="runs per start-rate side")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--paused", type=int, default=1000, help="runs paused at once (10000 for the full figure)"
    )
    parser.add_argument(
        "--cache", type=int, default=200, help="worker's workflow cache (fewer than --paused)"
    )
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "bench"))
    args = parser.parse_args()
    results = asyncio.run(run_bench(args))
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"bench-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(results, indent=2))
    sys.stdout.write(json.dumps(results, indent=2) + f"\nwritten to {out}\n")


if __name__ == "__main__":
    main()
