"""Record the workflow histories that ``tests/workflows/test_replay.py`` replays.

Each scenario is a representative run (approve, reject, expire, two pauses,
four eyes, a cancelled batch). Its history, replayed against the current
``AgentRunWorkflow``, fails when a code change would break runs already in flight. Guard such a
change with ``workflow.patched`` and add a scenario rather than re-record an old
file (see README.md here):

    .venv/bin/python -m tests.histories.record            # every scenario
    .venv/bin/python -m tests.histories.record approve    # some of them

It starts its own Temporal dev server, scripted model and worker, and writes
``tests/histories/<scenario>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from countersign import search_attributes as sa
from countersign.models import RunStatus
from tests.conftest import DEV_SERVER_ARGS, make_settings, temporal_cli
from tests.scripted_openai import Call, Reply, ScriptedModel, ScriptedServer
from tests.webhook_receiver import webhook_receiver
from tests.workflows.helpers import (
    ALICE,
    BOB,
    CAROL,
    TEST_AGENT_MODULES,
    RunHandle,
    Worker,
    approve,
    decide_and_wait,
    reject,
    running_worker,
    start_paused,
)

HISTORY_DIR = Path(__file__).parent
logger = logging.getLogger(__name__)

DELETE_50 = Call("delete_records", {"table_name": "users", "count": 50})
NOTIFY = Call("send_notification", {"recipient": "ops", "message": "cleanup done"})


@dataclass(frozen=True)
class Recording:
    """What a scenario runs against."""

    client: Client
    worker: Worker
    model: ScriptedModel


Scenario = Callable[[Recording], Awaitable[RunHandle]]


async def _approve(r: Recording) -> RunHandle:
    handle, paused = await start_paused(
        r.client, r.worker, r.model, "History: approve", Reply(calls=[DELETE_50])
    )
    await approve(handle, paused.tools[0].tool_call_id)
    return handle


async def _reject(r: Recording) -> RunHandle:
    handle, paused = await start_paused(
        r.client, r.worker, r.model, "History: reject", Reply(calls=[DELETE_50])
    )
    await reject(handle, paused.tools[0].tool_call_id, note="not now")
    return handle


async def _expire(r: Recording) -> RunHandle:
    quick = Call("quick_delete", {"table_name": "users", "count": 10})
    handle, _ = await start_paused(
        r.client, r.worker, r.model, "History: expire", Reply(calls=[quick])
    )
    await handle.result()
    return handle


async def _two_batches(r: Recording) -> RunHandle:
    """A batch of two gated calls and an ungated one, decided one at a time,
    then a second pause in the next turn."""
    count = Call("count_rows", {"table_name": "orders"})
    handle, first = await start_paused(
        r.client,
        r.worker,
        r.model,
        "History: two batches",
        Reply(calls=[DELETE_50, count, NOTIFY]),
        Reply(calls=[Call("delete_records", {"table_name": "orders", "count": 5})]),
    )
    delete_id, notify_id = (t.tool_call_id for t in first.pending)
    await approve(handle, delete_id)
    second = await decide_and_wait(handle, {notify_id: False})
    await approve(handle, second.pending[0].tool_call_id)
    return handle


async def _four_eyes(r: Recording) -> RunHandle:
    four_eyes = Call("four_eyes_delete", {"table_name": "sessions", "count": 20})
    handle, paused = await start_paused(
        r.client,
        r.worker,
        r.model,
        "History: four eyes",
        Reply(calls=[four_eyes]),
        requester=CAROL,
    )
    call_id = paused.tools[0].tool_call_id
    await approve(handle, call_id, principal=ALICE)
    await approve(handle, call_id, principal=BOB)
    return handle


async def _cancel_batch(r: Recording) -> RunHandle:
    """A cancel_run expiry that denies the other call of its batch (patched path)."""
    purge = Call("purge_or_cancel", {"table_name": "sessions", "count": 5})
    handle, _ = await start_paused(
        r.client, r.worker, r.model, "History: cancel batch", Reply(calls=[purge, DELETE_50])
    )
    await handle.result()
    return handle


async def _operator_cancel(r: Recording) -> RunHandle:
    """A paused run cancelled through Temporal (patched path)."""
    handle, _ = await start_paused(
        r.client, r.worker, r.model, "History: operator cancel", Reply(calls=[DELETE_50])
    )
    await handle.cancel()
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    return handle


async def _webhooks(r: Recording) -> RunHandle:
    """Approve with webhook receivers configured: deliveries are activities."""
    async with webhook_receiver(fail_first=1) as receiver:
        settings = r.worker.settings.model_copy(
            update={
                "webhook_urls": [receiver.url],
                "temporal_task_queue": f"{r.worker.task_queue}-webhooks",
            }
        )
        async with running_worker(r.client, settings) as worker:
            handle, paused = await start_paused(
                r.client, worker, r.model, "History: webhooks", Reply(calls=[DELETE_50])
            )
            await approve(handle, paused.tools[0].tool_call_id)
            await handle.result()
    return handle


SCENARIOS: dict[str, Scenario] = {
    "operator_cancel": _operator_cancel,
    "webhooks": _webhooks,
    "approve": _approve,
    "reject": _reject,
    "expire": _expire,
    "two_batches": _two_batches,
    "four_eyes": _four_eyes,
    "cancel_batch": _cancel_batch,
}


def history_path(name: str) -> Path:
    """Where the history of scenario ``name`` is stored."""
    return HISTORY_DIR / f"{name}.json"


async def record_scenario(name: str, recording: Recording) -> str:
    """Run one scenario to its end and return its history as JSON."""
    handle = await SCENARIOS[name](recording)
    status = (await handle.describe()).status
    if status is WorkflowExecutionStatus.COMPLETED:
        view = await handle.result()
        if view.status is RunStatus.ERROR:
            raise RuntimeError(f"scenario {name} failed: {view.error}")
    elif status is not WorkflowExecutionStatus.CANCELED:
        raise RuntimeError(f"scenario {name} ended {status}")
    history = await handle.fetch_history()
    return history.to_json()


async def record(names: Sequence[str]) -> list[Path]:
    """Start a dev server, a scripted model and a worker; record ``names``."""
    model = ScriptedModel()
    server = ScriptedServer(model)
    await server.start()
    written: list[Path] = []
    try:
        async with await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_cli(),
            data_converter=pydantic_data_converter,
            search_attributes=sa.ALL,
            dev_server_extra_args=DEV_SERVER_ARGS,
        ) as env:
            with tempfile.TemporaryDirectory() as tmp:
                settings = make_settings(
                    model, Path(tmp), f"record-{uuid.uuid4()}", agent_modules=TEST_AGENT_MODULES
                )
                async with running_worker(env.client, settings) as worker:
                    recording = Recording(env.client, worker, model)
                    for name in names:
                        path = history_path(name)
                        path.write_text(await record_scenario(name, recording) + "\n")
                        logger.info("recorded %s", path)
                        written.append(path)
    finally:
        await server.stop()
    return written


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: record the named scenarios, or all of them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    asyncio.run(record(args.scenarios or list(SCENARIOS)))


if __name__ == "__main__":
    main()
