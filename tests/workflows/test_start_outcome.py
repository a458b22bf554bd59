"""``RunClient.start`` answers "started" only for a run Temporal has.

After a crash of the Temporal server a create can fail or time out either side
of the start. A caller told "not started" retries and a caller told "started"
does not, so a wrong answer loses a run or starts its work twice.
"""

from __future__ import annotations

import pytest
from temporalio.client import Client

from countersign.client import (
    NotAcceptedError,
    RunClient,
    StartNotConfirmedError,
    build_run_input,
)
from countersign.models import RunStatus
from tests.scripted_openai import Reply, ScriptedModel
from tests.workflows.helpers import AGENT_ID, ALICE, OPERATORS, WAIT, Worker


async def test_start_repeated_after_it_happened_is_reported_started(
    client: Client, worker: Worker, model: ScriptedModel
) -> None:
    # What an RPC retried after the server had started the run looks like:
    # the second start meets the first. The run exists, so "started".
    model.script("hello twice", Reply(text="hi"))
    run = build_run_input(
        worker.settings, agent_id=AGENT_ID, message="hello twice", requester=ALICE
    ).model_copy(update={"operator_ids": OPERATORS})
    first, view = await RunClient.start(client, run, task_queue=worker.task_queue, wait=WAIT)
    assert view is not None and view.status is RunStatus.COMPLETED

    with pytest.raises(NotAcceptedError, match=f"run {run.run_id} is started already"):
        await RunClient.start(client, run, task_queue=worker.task_queue, wait=WAIT)

    assert (await first.view()).status is RunStatus.COMPLETED


async def test_start_that_did_not_happen_says_retry_is_safe(client: Client, worker: Worker) -> None:
    elsewhere = Client(
        client.service_client,
        namespace="countersign-no-such-namespace",
        data_converter=client.data_converter,
    )
    run = build_run_input(worker.settings, agent_id=AGENT_ID, message="lost?", requester=ALICE)

    with pytest.raises(StartNotConfirmedError, match="nothing changed: retry") as refused:
        await RunClient.start(elsewhere, run, task_queue=worker.task_queue, wait=WAIT)

    assert refused.value.started is False
    assert refused.value.run_id == run.run_id
