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
  for ``AgentRunWorkflow`` and for the bare workflow.

Each figure is CPU time (``time.process_time``, all threads) per call, the
median of several rounds. Their sum per flow against the two columns' worker
CPU per flow in ``docs/benchmarks.md`` says how much of the gap is the work
itself, which the bare flow leaves out on purpose, and how much is the
workflow's own overhead. The activities run through Temporal's
``ActivityEnvironment`` (no server): what the worker adds around an activity
is the same for both columns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import temporalio.workflow
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.llm import ModelActivities
from activities.tools import ToolActivities
from bench.bare import BareWorkflow
from bench.model_server import GATED_ARGS, GATED_TOOL
from bench.procs import Processes, free_port, poll_until
from countersign import ToolDeps, load_registry
from countersign.demo_db import DemoDatabase
from countersign.models import ChatMessage, ModelToolCall, ModelTurnInput, ToolInvocation
from countersign.settings import Settings
from workflows.agent_run import AgentRunWorkflow

AGENT_ID = "data_manager"
MESSAGE = "Delete 5 records from users"


async def _cpu_per_call(call: Callable[[int], Awaitable[Any]], calls: int, rounds: int) -> float:
    """Median over ``rounds`` of the CPU milliseconds per call of ``calls`` calls."""
    for i in range(min(calls, 20)):  # warm caches and connections
        await call(i)
    per_round = []
    for r in range(rounds):
        start = time.process_time()
        for i in range(calls):
            await call((r + 1) * calls + i)
        per_round.append((time.process_time() - start) / calls * 1000)
    return statistics.median(per_round)


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


async def measure(calls: int, rounds: int, work_dir: Path) -> dict[str, float]:
    """CPU milliseconds per call of each part, with a scripted model on a free port."""
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
            "model turn 1 (the call)": await _cpu_per_call(
                lambda i: env.run(model.model_turn, _turn_input(1, f"r{i}")), calls, rounds
            ),
            "model turn 2 (the answer)": await _cpu_per_call(
                lambda i: env.run(model.model_turn, _turn_input(2, f"r{i}")), calls, rounds
            ),
            "gated tool (SQLite, idempotency record)": await _cpu_per_call(tool, calls, rounds),
        }
        await model.aclose()
        runner = SandboxedWorkflowRunner()
        for name, cls in (("AgentRunWorkflow", AgentRunWorkflow), ("bare", BareWorkflow)):
            defn = temporalio.workflow._Definition.must_from_class(cls)

            async def create(_: int, d: Any = defn) -> None:
                runner.prepare_workflow(d)

            results[f"sandboxed instance: {name}"] = await _cpu_per_call(create, calls, rounds)
        return results
    finally:
        processes.stop_all()


def report(results: dict[str, float]) -> str:
    """The markdown table of the parts, and the sum one flow pays beyond the bare flow."""
    extra = (
        results["model turn 1 (the call)"]
        + results["model turn 2 (the answer)"]
        + results["gated tool (SQLite, idempotency record)"]
        + results["sandboxed instance: AgentRunWorkflow"]
        - results["sandboxed instance: bare"]
    )
    lines = ["| part | CPU per call |", "|---|---|"]
    lines += [f"| {name} | {ms:.2f} ms |" for name, ms in results.items()]
    lines.append(
        f"| **one flow beyond the bare flow** (two turns, one tool, one instance less the"
        f" bare one) | **{extra:.1f} ms** |"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__)
    parser.add_argument("--calls", type=int, default=200, help="calls per round (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, median taken (default 5)")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="countersign-breakdown-") as tmp:
        results = asyncio.run(measure(args.calls, args.rounds, Path(tmp)))
    print(report(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
