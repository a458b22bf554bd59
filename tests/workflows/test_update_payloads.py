"""Update answers are compact: the conversation stays out of them, not out of the run.

Each ``wait_settled`` and ``decide`` answer is written to the run's history and
crosses the SDK twice; its callers need the status and the calls only. The
``state`` query and the run's result still carry every message.
"""

from __future__ import annotations

from temporalio.client import Client

from countersign.models import RunStatus
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.workflows.helpers import Worker, approve, current, start_paused

DELETE_50 = Call("delete_records", {"table_name": "users", "count": 50})


async def test_update_answers_leave_the_messages_to_the_query_and_the_result(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, paused = await start_paused(
        client, worker, model, "Delete 50 users", Reply(calls=[DELETE_50]), Reply(text="Done.")
    )

    assert paused.status is RunStatus.PAUSED
    assert paused.messages == []
    assert [t.tool_name for t in paused.pending] == ["delete_records"]
    assert [m.role for m in (await current(handle)).messages] == ["user", "assistant"]

    done = await approve(handle, paused.tools[0].tool_call_id)

    assert done.status is RunStatus.COMPLETED
    assert done.content == "Done."
    assert done.messages == []
    result = await handle.result()
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "assistant"]
    assert [m.role for m in (await current(handle)).messages] == [m.role for m in result.messages]
