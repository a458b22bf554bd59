"""Where the worker's CPU per flow goes beyond the bare worker's: the parts measured alone.

``python -m bench.breakdown`` (``make bench-breakdown``) times, in this
process and on an idle loop, the work a Countersign flow does in its worker
that the bare flow does not, one part at a time:

- a model turn through the ``model_turn`` activity (the ``openai`` client's
  HTTP round trip to the benchmark's scripted model, in its own process, and
  the checks of the calls it proposes), for each of the flow's two turns;
- the gated tool through the ``execute_tool`` activity (its SQLite
  transaction with the idempotency record);
- creating the sandboxed workflow instance, once per run started or replayed,
  for ``AgentRunWorkflow`` and for the bare workflow;
- replaying one whole run of each (``Replayer``, from the history of a flow
  just made on a dev server of its own): everything the workflow side of a
  worker does for a run, the SDK's handling of its commands and payloads
  included, without the activities.

Each figure is CPU time (``time.process_time``, all threads) and wall time per
call, the median of several rounds; the wall time of the activities is what
they add to a flow's latency. Against the two columns' worker CPU per flow in
``docs/benchmarks.md`` they say how much of the gap is work the bare flow
leaves out on purpose (the activities' own work) and how much is the
workflow side. The activities run through Temporal's
``ActivityEnvironment`` (no server): what the worker adds around an activity
is the same for both columns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import temporalio.workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Replayer, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.llm import ModelActivities
from activities.tools import ToolActivities
from bench.bare import BareWorkflow, bare_model, bare_tool
from bench.flows import BareSide
from bench.model_server import GATED_ARGS, GATED_TOOL
from bench.procs import Processes, free_port, poll_until
from countersign import ToolDeps, load_registry
from countersign import search_attributes as sa
from countersign.client import RunClient, build_run_input, workflow_id
from countersign.demo_db import DemoDatabase
from countersign.models import (
    ChatMessage,
    DecideRequest,
    DecisionInput,
    ModelToolCall,
    ModelTurnInput,
    Principal,
    RunStatus,
    ToolInvocation,
)
from countersign.settings import Settings
from devstack.temporal_server import dynamic_config_args, temporal_cli
from worker import build_worker
from workflows.agent_run import AgentRunWorkflow

AGENT_ID = "data_manager"
MESSAGE = "Delete 5 records from users"
#: How long the recorded flows may wait for a worker's answer.
FLOW_WAIT = timedelta(seconds=30)


async def _per_call(
    call: Callable[[int], Awaitable[Any]], calls: int, rounds: int
) -> tuple[float, float]:
    """Medians over ``rounds`` of CPU and wall milliseconds per call, ``calls`` calls a round."""
    for i in range(min(calls, 20)):  # warm caches and connections
        await call(i)
    cpu, wall = [], []
    for r in range(rounds):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        for i in range(calls):
            await call((r + 1) * calls + i)
        cpu.append((time.process_time() - start_cpu) / calls * 1000)
        wall.append((time.perf_counter() - start_wall) / calls * 1000)
    return statistics.median(cpu), statistics.median(wall)


def _turn_input(turn: int, run_id: str) -> ModelTurnInput:
    messages = [ChatMessage(role="user", content=MESSAGE)]
    if turn == 2:
        messages += [
            ChatMessage(
                role="assistant",
                tool_calls=[
                    ModelToolCall(tool_call_id="call_1", tool_name=GATED_TOOL, arguments=GATED_ARGS)
                ],
            ),
            ChatMessage(
                role="tool", tool_call_id="call_1", tool_name=GATED_TOOL, content="Deleted 5"
            ),
        ]
    return ModelTurnInput(run_id=run_id, agent_id=AGENT_ID, turn=turn, messages=messages)


async def measure(calls: int, rounds: int, work_dir: Path) -> dict[str, tuple[float, float]]:
    """CPU and wall milliseconds per call of each part, with a scripted model on a free port."""
    processes = Processes(work_dir)
    port = free_port()
    processes.start("model", [sys.executable, "-m", "bench.model_server", "--port", str(port)], {})
    try:
        settings = Settings.model_validate(
            {
                "model_provider": "openai",
                "openai_api_key": "bench",
                "openai_base_url": f"http://127.0.0.1:{port}/v1",
                "openai_model": "bench-scripted",
            }
        )
        registry = load_registry(settings.agent_modules)
        model = ModelActivities(registry, settings)
        env = ActivityEnvironment()

        async def model_answers() -> bool:
            processes.check_alive()
            try:
                await env.run(model.model_turn, _turn_input(1, "probe"))
            except ApplicationError:  # the model turn's own word for "not up yet"
                return False
            return True

        await poll_until(model_answers, within=30, what="the scripted model")
        db = DemoDatabase(work_dir / "demo.sqlite3")
        db.ensure_seeded()
        tools = ToolActivities(registry, ToolDeps(demo_db=db))
        args = json.loads(GATED_ARGS)

        async def tool(i: int) -> object:
            # Once the table is empty the tool deletes nothing, but its work
            # (one transaction with its idempotency record) is the same.
            result = await env.run(
                tools.execute_tool,
                ToolInvocation(
                    run_id="bench",
                    agent_id=AGENT_ID,
                    tool_call_id=f"call_{i}",
                    tool_name=GATED_TOOL,
                    tool_args=args,
                    idempotency_key=f"bench:{uuid.uuid4().hex}",
                    output_limit=4000,
                ),
            )
            assert result.ok, result.output
            return result

        results = {
            "model turn 1 (the call)": await _per_call(
                lambda i: env.run(model.model_turn, _turn_input(1, f"r{i}")), calls, rounds
            ),
            "model turn 2 (the answer)": await _per_call(
                lambda i: env.run(model.model_turn, _turn_input(2, f"r{i}")), calls, rounds
            ),
            "gated tool (SQLite, idempotency record)": await _per_call(tool, calls, rounds),
        }
        await model.aclose()
        runner = SandboxedWorkflowRunner()
        for name, cls in (("AgentRunWorkflow", AgentRunWorkflow), ("bare", BareWorkflow)):
            defn = temporalio.workflow._Definition.must_from_class(cls)

            async def create(_: int, d: Any = defn) -> None:
                runner.prepare_workflow(d)

            results[f"sandboxed instance: {name}"] = await _per_call(create, calls, rounds)
        return results | await replay_costs(settings, work_dir, calls, rounds)
    finally:
        processes.stop_all()


async def replay_costs(
    settings: Settings, work_dir: Path, calls: int, rounds: int
) -> dict[str, tuple[float, float]]:
    """CPU and wall milliseconds to replay one whole run of each column, recorded just now."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli()),
        data_converter=pydantic_data_converter,
        search_attributes=sa.ALL,
        dev_server_extra_args=dynamic_config_args(),
    )
    async with env:
        client = env.client
        bare_queue = f"breakdown-bare-{uuid.uuid4().hex[:8]}"
        async with Worker(
            client,
            task_queue=bare_queue,
            workflows=[BareWorkflow],
            activities=[bare_model, bare_tool],
        ):
            bare = await BareSide(client, bare_queue).flow()
        run_settings = settings.model_copy(
            update={
                "temporal_task_queue": f"breakdown-{uuid.uuid4().hex[:8]}",
                "demo_db_path": work_dir / "replay.sqlite3",
            }
        )
        run = build_run_input(
            run_settings,
            agent_id=AGENT_ID,
            message=MESSAGE,
            requester=Principal(id="bench", roles=("requester",)),
        )
        async with build_worker(client, run_settings):
            started, paused = await RunClient.start(
                client, run, task_queue=run_settings.temporal_task_queue, wait=FLOW_WAIT
            )
            assert paused is not None and paused.pending, paused
            done = await started.decide(
                DecideRequest(
                    decisions=[
                        DecisionInput(tool_call_id=paused.pending[0].tool_call_id, confirmed=True)
                    ],
                    principal=Principal(id="bench-approver", roles=("approver",)),
                ),
                wait=FLOW_WAIT,
            )
            assert done is not None and done.run.status is RunStatus.COMPLETED, done
        histories = {
            "AgentRunWorkflow": (
                AgentRunWorkflow,
                await client.get_workflow_handle(workflow_id(run.run_id)).fetch_history(),
            ),
            "bare": (
                BareWorkflow,
                await client.get_workflow_handle(bare.workflow_id).fetch_history(),
            ),
        }
    results: dict[str, tuple[float, float]] = {}
    for name, (cls, history) in histories.items():
        replayer = Replayer(workflows=[cls], data_converter=pydantic_data_converter)

        async def replay(_: int, r: Replayer = replayer, h: WorkflowHistory = history) -> None:
            await r.replay_workflow(h)

        results[f"replay of one run: {name} ({len(history.events)} events)"] = await _per_call(
            replay, max(calls // 4, 1), rounds
        )
    return results


def report(results: dict[str, tuple[float, float]]) -> str:
    """The markdown table of the parts, and what one flow pays beyond the bare flow."""
    activities = [
        results[name]
        for name in (
            "model turn 1 (the call)",
            "model turn 2 (the answer)",
            "gated tool (SQLite, idempotency record)",
        )
    ]
    lines = ["| part | CPU per call | wall per call |", "|---|---|---|"]
    lines += [f"| {name} | {cpu:.2f} ms | {wall:.2f} ms |" for name, (cpu, wall) in results.items()]
    cpu, wall = sum(c for c, _ in activities), sum(w for _, w in activities)
    lines.append(
        f"| **activities: one flow beyond the bare flow's no-ops** (two model turns, one tool)"
        f" | **{cpu:.1f} ms** | **{wall:.1f} ms** |"
    )
    replays = [cpu for name, (cpu, _) in results.items() if name.startswith("replay of one run")]
    if len(replays) == 2:
        lines.append(
            f"| **workflow side: one run beyond the bare run** (replays, Countersign less bare;"
            f" the sandboxed instance included) | **{replays[0] - replays[1]:.1f} ms** | |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__)
    parser.add_argument("--calls", type=int, default=200, help="calls per round (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, median taken (default 5)")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    # The worker recorded for the replay warns that it checks no decision
    # proofs; true, and beside the point of a measurement.
    logging.getLogger("countersign.worker").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="countersign-breakdown-") as tmp:
        results = asyncio.run(measure(args.calls, args.rounds, Path(tmp)))
    print(report(results))
    if args.out:
        figures = {name: {"cpu_ms": cpu, "wall_ms": wall} for name, (cpu, wall) in results.items()}
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
