"""``python worker.py`` serves the Temporal SDK's metrics when asked to."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

from temporalio.client import Client

from tests.ops.helpers import eventually, free_port, http_get_text

PROJECT_ROOT = Path(__file__).resolve().parents[2]


async def test_worker_serves_sdk_metrics(client: Client, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "COUNTERSIGN_TASK_QUEUE": f"tq-metrics-{uuid.uuid4()}",
        "COUNTERSIGN_WORKER_METRICS_PORT": str(port),
        "COUNTERSIGN_DEMO_DB": str(tmp_path / "demo.sqlite3"),
        "COUNTERSIGN_MODEL": "demo",
    }
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "worker.py",
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:

        async def sdk_metrics_served() -> bool:
            body = await http_get_text(f"http://127.0.0.1:{port}/metrics") or ""
            # Client calls are counted from the first request; pollers once the worker polls.
            return "temporal_request{" in body and "temporal_num_pollers{" in body

        await eventually(sdk_metrics_served, within=30, what="the worker's /metrics")
    finally:
        worker.send_signal(signal.SIGINT)
        output, _ = await asyncio.wait_for(worker.communicate(), 60)
    assert worker.returncode == 0, output.decode()
    assert b"Traceback" not in output
