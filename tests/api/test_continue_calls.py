"""What ``/continue`` asks of Temporal: one ``decide`` update, no read of the run first.

The checks the API used to make on a run it had read (whose run, which
session, who may decide) travel with the decision and the validator makes
them; only a refusal takes the path that reads the run. Counted with an
interceptor on the client the API is given.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    QueryWorkflowInput,
    StartWorkflowUpdateInput,
    WorkflowUpdateHandle,
)

from api.main import create_app
from tests.api.conftest import SEED_ARGS, Api, assert_error
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


async def _counted_api(client: Client, worker: RunningWorker) -> tuple[Api, CountedCalls]:
    counted = CountedCalls()
    counting = Client(
        client.service_client,
        namespace=client.namespace,
        data_converter=client.data_converter,
        interceptors=[counted],
    )
    app = create_app(worker.settings, client=counting)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
    return Api(app, http), counted


async def test_a_decision_is_one_update_without_a_read(
    client: Client, worker: RunningWorker, model: ScriptedModel
) -> None:
    api, counted = await _counted_api(client, worker)
    async with api.http:
        run = await api.start_seed_run(model)
        counted.calls.clear()
        done = await api.continue_run(run, [decision(run["tools"][0])], session_id="test_session")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "COMPLETED"
    assert done.json()["tools"][0]["tool_args"] == SEED_ARGS
    assert counted.calls == Counter({"update decide": 1})
    assert worker.db.effect_count("delete_records") == 1


async def test_a_refused_decision_reads_the_run_and_answers_as_before(
    client: Client, worker: RunningWorker, model: ScriptedModel
) -> None:
    api, counted = await _counted_api(client, worker)
    async with api.http:
        run = await api.start_seed_run(model)
        counted.calls.clear()
        refused = await api.continue_run(
            run, [decision(run["tools"][0])], session_id="another_session"
        )
        assert_error(refused, 409, "session_mismatch")
        # The validator refused the update; the API then read the run and
        # refused it itself, sending nothing more.
        assert counted.calls == Counter({"update decide": 1, "query state": 1})
        still = await api.get_run(run["run_id"])
    assert still["status"] == "PAUSED"
    assert still["tools"][0]["state"] == "AWAITING_CONFIRMATION"
    assert worker.db.effect_count("delete_records") == 0
