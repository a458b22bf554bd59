"""Tool execution: output capped with the cap recorded, and failures reported."""

from __future__ import annotations

from temporalio.client import Client

from countersign.models import AuditKind, CallState, RunStatus
from tests.agents_for_tests import BIG_REPORT_CHARS
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.workflows.conftest import WorkerFactory
from tests.workflows.helpers import Worker, audit_trail, start_settled, tool_outputs_sent


async def test_tool_output_over_limit_is_truncated_and_recorded(
    client: Client, start_worker: WorkerFactory, model: ScriptedModel
) -> None:
    message = "Print the big report"
    async with start_worker(tool_output_limit=200) as worker:
        _, done = await start_settled(
            client, worker, model, message, Reply(calls=[Call("big_report", {})])
        )

    assert done.status is RunStatus.COMPLETED
    [call] = done.tools
    assert call.state is CallState.EXECUTED
    assert call.result_truncated is True
    assert call.result is not None
    assert len(call.result) <= 200
    assert call.result.endswith(f"[output truncated: {BIG_REPORT_CHARS} characters, limit 200]")
    assert tool_outputs_sent(model, message) == [call.result]


async def test_tool_error_fails_call_and_is_reported(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    message = "Run the broken tool"
    handle, done = await start_settled(
        client,
        worker,
        model,
        message,
        Reply(calls=[Call("broken_tool", {"reason": "disk on fire"})]),
    )

    assert done.status is RunStatus.COMPLETED
    [call] = done.tools
    assert call.state is CallState.FAILED
    assert call.tool_call_error is True
    assert call.result == "error: broken_tool failed: disk on fire"
    assert tool_outputs_sent(model, message) == [call.result]
    [failed] = [e for e in await audit_trail(handle) if e.kind is AuditKind.TOOL_FAILED]
    assert failed.tool_call_id == call.tool_call_id
    assert failed.detail == call.result
