"""The seed's flow end to end through the workflow: pause, approve, answer."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client

from countersign.models import (
    CallState,
    DecideRequest,
    DecisionInput,
    Principal,
    RunStatus,
)
from countersign.runs import build_run_input, decide, start_run
from tests.conftest import RunningWorker
from tests.scripted_openai import Call, Reply, ScriptedModel

SEED_MESSAGE = "Delete 50 old records from the users table"
ALICE = Principal(id="alice", roles=("approver",))


async def test_approve_executes_once_and_answers(
    client: Client, worker: RunningWorker, model: ScriptedModel
) -> None:
    model.script(
        SEED_MESSAGE, Reply(calls=[Call("delete_records", {"table_name": "users", "count": 50})])
    )
    run = build_run_input(
        worker.settings, agent_id="data_manager", message=SEED_MESSAGE, requester=ALICE
    )
    handle, paused = await start_run(
        client, run, task_queue=worker.task_queue, wait=timedelta(seconds=20)
    )
    assert paused is not None
    assert paused.status is RunStatus.PAUSED
    [call] = paused.tools
    assert call.tool_name == "delete_records"
    assert call.tool_args == {"table_name": "users", "count": 50}
    assert call.state is CallState.AWAITING_CONFIRMATION
    assert worker.db.count("users") == 1000

    result = await decide(
        handle,
        DecideRequest(
            decisions=[DecisionInput(tool_call_id=call.tool_call_id, confirmed=True)],
            principal=ALICE,
        ),
        wait=timedelta(seconds=20),
    )
    assert result is not None
    done = result.run
    assert done.status is RunStatus.COMPLETED
    assert worker.db.count("users") == 950
    assert worker.db.effect_count("delete_records") == 1
    assert "Deleted 50 records from users" in (done.content or "")
    assert done.tools[0].state is CallState.EXECUTED
