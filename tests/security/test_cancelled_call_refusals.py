"""A call denied because its run was cancelled is refused as ``call_cancelled``.

Through a decision link minted before the cancel, and through the approvals
routes, the answer says why nothing can be decided (409 ``call_cancelled``, as
``docs/architecture.md`` lists it), not that the call was already decided or
that the run is not paused, and nothing changes.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from temporalio.client import WorkflowFailureError

from countersign.client import workflow_id
from countersign.models import ErrorCode
from tests.api.conftest import assert_error
from tests.scripted_openai import Call, ScriptedModel
from tests.security.conftest import Secure


async def _cancelled(sec: Secure, model: ScriptedModel) -> tuple[dict[str, Any], str]:
    """A run cancelled through Temporal while its call waited, and a link minted before."""
    run = await sec.start(
        model, "rita", f"cancelled {uuid.uuid4().hex}", Call("purge", {"target": "t"})
    )
    minted = await sec.mint("alice", run["tools"][0])
    assert minted.status_code == 201, minted.text
    handle = sec.client.get_workflow_handle(workflow_id(run["run_id"]))
    await handle.cancel()
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    cancelled = await sec.run(run["run_id"])
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["tools"][0]["state"] == "CANCELLED"
    token: str = minted.json()["token"]
    return cancelled, token


async def _history_length(sec: Secure, run_id: str) -> int:
    history = await sec.client.get_workflow_handle(workflow_id(run_id)).fetch_history()
    return len(history.events)


async def test_cancelled_call_refused_through_links_and_approvals(
    sec: Secure, model: ScriptedModel
) -> None:
    run, token = await _cancelled(sec, model)
    call = run["tools"][0]
    events = await _history_length(sec, run["run_id"])
    code = ErrorCode.CALL_CANCELLED.value

    redeemed = await sec.redeem(token)
    approved = await sec.approve("alice", call, args_digest=call["args_digest"])
    rejected = await sec.http.post(
        f"/approvals/{call['approval_id']}/reject", json={}, headers=sec.auth("alice")
    )
    minted = await sec.mint("alice", call)

    for response in (redeemed, approved, rejected, minted):
        assert "was denied because its run was cancelled" in assert_error(response, 409, code)
    assert await sec.run(run["run_id"]) == run
    assert await _history_length(sec, run["run_id"]) == events
