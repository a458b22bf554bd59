"""JSON log lines written while a run's activities execute carry the run id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from temporalio.client import Client

from countersign.client import RunClient, build_run_input, workflow_id
from countersign.logs import JsonFormatter
from countersign.models import DecideRequest, DecisionInput, Principal, RunStatus
from countersign.observability import RunContextFilter
from tests.conftest import RunningWorker
from tests.scripted_openai import Call, Reply, ScriptedModel

MESSAGE = "Delete 3 old records from the sessions table"
ALICE = Principal(id="alice", roles=("requester", "approver"))


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The root logger's output as JSON lines, with the run-context filter installed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RunContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    tools_logger = logging.getLogger("activities.tools")
    previous = tools_logger.level
    tools_logger.setLevel(logging.INFO)
    yield stream
    tools_logger.setLevel(previous)
    root.removeHandler(handler)


async def test_activity_log_lines_carry_run_id(
    client: Client, worker: RunningWorker, model: ScriptedModel, json_lines: io.StringIO
) -> None:
    args = {"table_name": "sessions", "count": 3}
    model.script(MESSAGE, Reply(calls=[Call("delete_records", args)]))
    run = build_run_input(
        worker.settings, agent_id="data_manager", message=MESSAGE, requester=ALICE
    )
    started, paused = await RunClient.start(
        client, run, task_queue=worker.task_queue, wait=timedelta(seconds=20)
    )
    assert paused is not None
    [call] = paused.tools
    result = await started.decide(
        DecideRequest(
            decisions=[DecisionInput(tool_call_id=call.tool_call_id, confirmed=True)],
            principal=ALICE,
        ),
        wait=timedelta(seconds=20),
    )
    assert result is not None
    assert result.run.status is RunStatus.COMPLETED

    records = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    [executed] = [r for r in records if r["message"].startswith("tool delete_records executed")]
    assert executed["run_id"] == run.run_id
    assert executed["workflow_id"] == workflow_id(run.run_id)
    assert executed["activity_type"] == "execute_tool"


def test_filter_leaves_records_outside_runs_alone() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    assert RunContextFilter().filter(record)
    assert not hasattr(record, "run_id")
    assert not hasattr(record, "workflow_id")
