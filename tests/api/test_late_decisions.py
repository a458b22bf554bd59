"""Decisions a worker takes after the API stopped waiting: 503, and nothing changed.

Every decision the API sends carries ``not_after``, the end of its wait for a
worker; the validator refuses one taken later, so a 503 ("no worker took them
in time") stays true whenever the worker shows up. When the refusal itself
reaches the API (the worker came back in the last moment of the wait), the
answer is the same 503: the caller may send the decisions again. It is not a
403 (nobody was unauthorised) and never 2xx. Simulated here by moving the
deadline into the past on the way out, with an interceptor on the API's client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowUpdateInput,
    WorkflowUpdateHandle,
)

from countersign.models import DECIDE_UPDATE, DecideRequest
from tests.api.conftest import Api, api_for, assert_error, intercepted
from tests.api.test_errors import decision
from tests.api.test_sessions_owned import history_length
from tests.conftest import RunningWorker
from tests.scripted_openai import ScriptedModel


class LateDecisions(Interceptor):
    """Sends the API's ``decide`` updates as if a worker took them after their deadline."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        """Wrap the client's outbound calls."""
        return _Late(next)


class _Late(OutboundInterceptor):
    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        if input.update == DECIDE_UPDATE:
            [request] = input.args
            assert isinstance(request, DecideRequest) and request.not_after is not None
            past = datetime.now(UTC) - timedelta(seconds=1)
            input.args = [request.model_copy(update={"not_after": past})]
        return await super().start_workflow_update(input)


@pytest.fixture
async def late(
    client: Client, worker: RunningWorker, model: ScriptedModel
) -> AsyncIterator[tuple[Api, Api, dict[str, Any]]]:
    """The API whose decisions arrive too late, the plain API, and a paused run."""
    plain = api_for(worker.settings, client)
    too_late = api_for(worker.settings, intercepted(client, LateDecisions()))
    async with plain.http, too_late.http:
        yield too_late, plain, await plain.start_seed_run(model)


async def _assert_not_applied(
    response: httpx.Response, api: Api, run: dict[str, Any], client: Client, events: int
) -> None:
    assert_error(response, 503, "worker_unavailable")
    assert response.headers["retry-after"] == "5"
    assert "not applied" in response.json()["detail"]
    # Nothing changed, not even the audit trail: the caller did nothing wrong.
    assert await history_length(client, run["run_id"]) == events
    after = await api.get_run(run["run_id"])
    assert after["status"] == "PAUSED"
    assert after["tools"][0]["state"] == "AWAITING_CONFIRMATION"


async def test_continue_taken_too_late_is_503_and_changes_nothing(
    late: tuple[Api, Api, dict[str, Any]], client: Client, worker: RunningWorker
) -> None:
    too_late, plain, run = late
    events = await history_length(client, run["run_id"])

    response = await too_late.continue_run(run, [decision(run["tools"][0])])

    await _assert_not_applied(response, plain, run, client, events)
    again = await plain.continue_run(run, [decision(run["tools"][0])])
    assert again.status_code == 200, again.text
    assert again.json()["tools"][0]["state"] == "EXECUTED"
    assert worker.db.effect_count("delete_records") == 1


async def test_approval_taken_too_late_is_503_and_changes_nothing(
    late: tuple[Api, Api, dict[str, Any]], client: Client, worker: RunningWorker
) -> None:
    too_late, plain, run = late
    events = await history_length(client, run["run_id"])
    approval = f"/approvals/{run['tools'][0]['approval_id']}/approve"

    response = await too_late.http.post(approval)

    await _assert_not_applied(response, plain, run, client, events)
    again = await plain.http.post(approval)
    assert again.status_code == 200, again.text
    assert worker.db.effect_count("delete_records") == 1
