"""What ``/continue`` asks of Temporal: one ``decide`` update, no read of the run first.

The checks the API used to make on a run it had read (whose run, which
session, who may decide) travel with the decision and the validator makes
them; only a refusal takes the path that reads the run. Counted with an
interceptor on the client the API is given.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    QueryWorkflowInput,
    StartWorkflowUpdateInput,
    WorkflowUpdateHandle,
)

from tests.api.conftest import SEED_ARGS, Api, api_for, assert_error, intercepted
from tests.api.test_errors import decision
from tests.conftest import RunningWorker
from tests.scripted_openai import ScriptedModel


class CountedCalls(Interceptor):
    """Counts the API's queries and updates by name."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        """Wrap the client's outbound calls."""
        return _Counting(next, self.calls)


class _Counting(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, calls: Counter[str]) -> None:
        super().__init__(next)
        self.calls = calls

    async def query_workflow(self, input: QueryWorkflowInput) -> Any:
        self.calls[f"query {input.query}"] += 1
        return await super().query_workflow(input)

    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        self.calls[f"update {input.update}"] += 1
        return await super().start_workflow_update(input)


@pytest.fixture
async def counted(
    client: Client, worker: RunningWorker, model: ScriptedModel
) -> AsyncIterator[tuple[Api, CountedCalls, dict[str, Any]]]:
    """The API on a client that counts its calls, and a paused run, the count cleared."""
    calls = CountedCalls()
    api = api_for(worker.settings, intercepted(client, calls))
    async with api.http:
        run = await api.start_seed_run(model)
        calls.calls.clear()
        yield api, calls, run


async def test_a_decision_is_one_update_without_a_read(
    counted: tuple[Api, CountedCalls, dict[str, Any]], worker: RunningWorker
) -> None:
    api, calls, run = counted
    done = await api.continue_run(run, [decision(run["tools"][0])], session_id="test_session")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "COMPLETED"
    assert done.json()["tools"][0]["tool_args"] == SEED_ARGS
    assert calls.calls == Counter({"update decide": 1})
    assert worker.db.effect_count("delete_records") == 1


async def test_a_refused_decision_reads_the_run_and_answers_as_before(
    counted: tuple[Api, CountedCalls, dict[str, Any]], worker: RunningWorker
) -> None:
    api, calls, run = counted
    refused = await api.continue_run(run, [decision(run["tools"][0])], session_id="another_session")
    assert_error(refused, 409, "session_mismatch")
    # The validator refused the update; the API then read the run and refused
    # it itself, sending nothing more.
    assert calls.calls == Counter({"update decide": 1, "query state": 1})
    still = await api.get_run(run["run_id"])
    assert still["status"] == "PAUSED"
    assert still["tools"][0]["state"] == "AWAITING_CONFIRMATION"
    assert worker.db.effect_count("delete_records") == 0
