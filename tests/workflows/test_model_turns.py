"""Model turns: arguments checked before any pause, conditional confirmation,
model server errors and the turn limit.
"""

from __future__ import annotations

from temporalio.client import Client

from countersign.models import CallState, RunStatus
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.workflows.conftest import WorkerFactory
from tests.workflows.helpers import (
    Worker,
    approve,
    start_paused,
    start_settled,
    tool_outputs_sent,
)


async def test_invalid_args_never_pause_and_model_retries(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    message = "Delete fifty users, spelled out"
    handle, paused = await start_paused(
        client,
        worker,
        model,
        message,
        Reply(calls=[Call("delete_records", {"table_name": "users", "count": "fifty"})]),
        Reply(calls=[Call("delete_records", {"table_name": "users", "count": 50})]),
    )

    # The first call went back to the model; only the corrected one paused.
    assert paused.pause_count == 1
    invalid, valid = paused.tools
    assert invalid.state is CallState.INVALID
    assert invalid.tool_call_error is True
    assert invalid.decisions == []
    assert valid.state is CallState.AWAITING_CONFIRMATION
    assert [t.tool_call_id for t in paused.pending] == [valid.tool_call_id]
    [error] = tool_outputs_sent(model, message)
    assert error.startswith("error: invalid arguments for delete_records: count:")

    done = await approve(handle, valid.tool_call_id)

    assert done.status is RunStatus.COMPLETED
    assert worker.db.effect_count("delete_records") == 1
    assert worker.db.count("users") == 950


async def test_unknown_tool_goes_back_to_model(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    message = "Drop the whole database"
    _, done = await start_settled(
        client, worker, model, message, Reply(calls=[Call("drop_database", {})])
    )

    assert done.status is RunStatus.COMPLETED
    assert done.pause_count == 0
    assert done.tools[0].state is CallState.INVALID
    [error] = tool_outputs_sent(model, message)
    assert error.startswith("error: unknown tool 'drop_database'")


async def test_conditional_confirmation_small_count_runs_without_pause(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    _, done = await start_settled(
        client,
        worker,
        model,
        "Bulk delete a few orders",
        Reply(calls=[Call("bulk_delete", {"table_name": "orders", "count": 10})]),
    )

    assert done.status is RunStatus.COMPLETED
    assert done.pause_count == 0
    [call] = done.tools
    assert call.requires_confirmation is False
    assert call.state is CallState.EXECUTED
    assert worker.db.count("orders") == 490


async def test_conditional_confirmation_large_count_pauses(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    handle, paused = await start_paused(
        client,
        worker,
        model,
        "Bulk delete many orders",
        Reply(calls=[Call("bulk_delete", {"table_name": "orders", "count": 101})]),
    )
    [call] = paused.pending
    assert call.requires_confirmation is True
    assert worker.db.count("orders") == 500

    done = await approve(handle, call.tool_call_id)

    assert done.status is RunStatus.COMPLETED
    assert worker.db.count("orders") == 399


async def test_rate_limited_model_call_is_retried(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    message = "Say hello after a rate limit"
    model.fail_next(429, times=2)

    _, done = await start_settled(client, worker, model, message, Reply(text="hello"))

    assert done.status is RunStatus.COMPLETED
    assert done.content == "hello"
    assert len(model.requests_for(message)) == 3


async def test_unauthorized_model_call_ends_in_error(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    message = "Say hello with a bad key"
    model.fail_next(401)

    _, done = await start_settled(client, worker, model, message, Reply(text="hello"))

    assert done.status is RunStatus.ERROR
    assert done.error is not None
    assert "model request failed with HTTP 401" in done.error
    assert "scripted HTTP 401" in done.error
    assert done.content == done.error
    # 401 is not retryable: one request, no second attempt.
    assert len(model.requests_for(message)) == 1


async def test_model_that_keeps_calling_tools_stops_at_max_turns(
    client: Client, start_worker: WorkerFactory, model: ScriptedModel
) -> None:
    count = Call("count_rows", {"table_name": "users"})
    async with start_worker(max_turns=3) as worker:
        _, done = await start_settled(
            client, worker, model, "Count forever", *(Reply(calls=[count]) for _ in range(5))
        )

    assert done.status is RunStatus.ERROR
    assert done.error == "the model kept calling tools: stopped after 3 turns (max_turns)"
    assert done.turns == 3
    assert [t.state for t in done.tools] == [CallState.EXECUTED] * 3
