"""Only decisions the API authorised reach a call: the proof, operator signals, key rotation.

Anything that reaches the Temporal frontend can send the ``decide`` update or
the ``decide_signal`` signal with any principal in its payload. These tests do
exactly that with the Temporal client (as ``temporal workflow update execute``
or the UI's signal action would) against a worker holding proof keys, and
check that nothing runs, while the same decision through the API does.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from countersign.client import workflow_id
from countersign.decision_proof import DecisionProofKeys
from countersign.models import (
    DECIDE_SIGNAL,
    DECIDE_UPDATE,
    DecideRequest,
    DecideResult,
    DecisionInput,
    DecisionSource,
    Principal,
)
from tests.api.conftest import assert_error, eventually
from tests.conftest import RunningWorker, run_worker
from tests.scripted_openai import Call, ScriptedModel
from tests.security.conftest import Secure, SecureFactory, security_settings

NEW_KEY = secrets.token_urlsafe(40)
OLD_KEY = secrets.token_urlsafe(40)
FORGED = Principal(id="mallory-forged", roles=("admin",))


def _effects(sec: Secure, tool_name: str) -> int:
    return sum(1 for n in sec.db.notifications() if n.recipient == tool_name)


async def _paused(sec: Secure, model: ScriptedModel, target: str) -> dict[str, Any]:
    """A run started by rita whose purge of ``target`` awaits confirmation."""
    return await sec.start(
        model, "rita", f"purge {uuid.uuid4().hex}", Call("purge", {"target": target})
    )


def _forged(call: dict[str, Any], principal: Principal = FORGED, **extra: Any) -> DecideRequest:
    return DecideRequest(
        decisions=[DecisionInput(tool_call_id=call["tool_call_id"], confirmed=True)],
        principal=principal,
        **extra,
    )


async def _refused_update(sec: Secure, run_id: str, request: DecideRequest) -> ApplicationError:
    handle = sec.client.get_workflow_handle(workflow_id(run_id))
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update(DECIDE_UPDATE, request, result_type=DecideResult)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def _history_length(client: Client, run_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id(run_id)).fetch_history()
    return len(history.events)


async def test_forged_update_is_refused_and_nothing_runs(sec: Secure, model: ScriptedModel) -> None:
    run = await sec.start(
        model, "rita", f"purge {uuid.uuid4().hex}", Call("purge", {"target": "x"})
    )
    call = run["tools"][0]
    events = await _history_length(sec.client, run["run_id"])

    cause = await _refused_update(sec, run["run_id"], _forged(call))

    assert cause.type == "unauthorised_decision"
    assert "no proof" in cause.message
    assert await sec.run(run["run_id"]) == run
    assert _effects(sec, "purge") == 0
    assert not [e for e in await sec.audit(run["run_id"]) if e["kind"] == "approval.decided"]
    # A validator's refusal leaves nothing in history.
    assert await _history_length(sec.client, run["run_id"]) == events


async def test_a_proof_does_not_carry_over_to_another_principal_or_run(
    sec: Secure, model: ScriptedModel
) -> None:
    # A proof seen in history (it is there, with the accepted update) cannot
    # be reused: it covers the principal, the decisions and the run id.
    first = await _paused(sec, model, "a")
    second = await _paused(sec, model, "b")
    keys = sec.settings.decision_proof_keys[0].get_secret_value()
    alice = Principal(id="alice", roles=("approver",))
    signed = DecisionProofKeys([keys]).sign(
        first["run_id"], _forged(first["tools"][0], alice), datetime.now(UTC)
    )
    as_admin = signed.model_copy(update={"principal": FORGED})
    elsewhere = signed.model_copy(
        update={
            "decisions": [
                DecisionInput(tool_call_id=second["tools"][0]["tool_call_id"], confirmed=True)
            ]
        }
    )

    for run_id, request in ((first["run_id"], as_admin), (second["run_id"], elsewhere)):
        cause = await _refused_update(sec, run_id, request)
        assert cause.type == "unauthorised_decision"
        assert "not valid" in cause.message
    assert await sec.run(first["run_id"]) == first
    assert await sec.run(second["run_id"]) == second
    assert _effects(sec, "purge") == 0


async def test_the_same_decision_through_the_api_is_accepted(
    sec: Secure, model: ScriptedModel
) -> None:
    run = await sec.start(
        model, "rita", f"purge {uuid.uuid4().hex}", Call("purge", {"target": "y"})
    )

    approved = await sec.approve("alice", run["tools"][0])

    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "COMPLETED"
    assert _effects(sec, "purge") == 1
    decided = [e for e in await sec.audit(run["run_id"]) if e["kind"] == "approval.decided"]
    assert [(e["principal"]["id"], e["source"]) for e in decided] == [
        (approved.json()["tools"][0]["decisions"][0]["principal_id"], "api")
    ]


async def test_signal_from_a_non_operator_is_refused_and_recorded(
    secure_api: SecureFactory, model: ScriptedModel
) -> None:
    async with secure_api(operator_ids=["ops-olga"]) as sec:
        run = await sec.start(
            model, "rita", f"p {uuid.uuid4().hex}", Call("purge", {"target": "z"})
        )
        call = run["tools"][0]
        handle = sec.client.get_workflow_handle(workflow_id(run["run_id"]))

        await handle.signal(DECIDE_SIGNAL, _forged(call))

        async def refusals() -> list[dict[str, Any]]:
            trail = await sec.audit(run["run_id"])
            return [e for e in trail if e["kind"] == "approval.refused"]

        refused = await eventually(refusals, lambda found: len(found) == 1)
        assert refused[0]["principal"]["id"] == FORGED.id
        assert refused[0]["source"] == "signal"
        assert refused[0]["data"]["code"] == "unauthorised_decision"
        after = await sec.run(run["run_id"])
        assert after["status"] == "PAUSED"
        assert after["tools"] == run["tools"]
        assert _effects(sec, "purge") == 0

        # An operator named in the settings the run started with decides by signal.
        olga = Principal(id="ops-olga", roles=("approver",))
        await handle.signal(DECIDE_SIGNAL, _forged(call, olga))

        async def status() -> str:
            return str((await sec.run(run["run_id"]))["status"])

        assert await eventually(status, lambda s: s == "COMPLETED") == "COMPLETED"
        decided = [e for e in await sec.audit(run["run_id"]) if e["kind"] == "approval.decided"]
        assert [(e["principal"]["id"], e["source"]) for e in decided] == [("ops-olga", "signal")]
        assert _effects(sec, "purge") == 1


@pytest.fixture
async def worker(
    client: Client, model: ScriptedModel, tmp_path: Path
) -> AsyncIterator[RunningWorker]:
    """The security worker in the middle of a key rotation: the new key signs, the old verifies.

    Overrides the security suite's worker for this module; the API signs with
    the worker's keys unless a test gives it others.
    """
    settings = security_settings(
        model, tmp_path, f"tq-rot-{uuid.uuid4()}", decision_proof_keys=[NEW_KEY, OLD_KEY]
    )
    async with run_worker(client, settings) as running:
        yield running


@pytest.mark.parametrize(
    ("api_keys", "accepted"),
    [([NEW_KEY, OLD_KEY], True), ([OLD_KEY], True), ([secrets.token_urlsafe(40)], False)],
    ids=["rotated-api", "api-not-yet-rotated", "unlisted-key"],
)
async def test_key_rotation_old_key_verifies_while_listed(
    secure_api: SecureFactory,
    model: ScriptedModel,
    api_keys: list[str],
    accepted: bool,
) -> None:
    # model_copy does not validate: the keys go in as the settings hold them.
    async with secure_api(decision_proof_keys=[SecretStr(k) for k in api_keys]) as sec:
        run = await sec.start(
            model, "rita", f"r {uuid.uuid4().hex}", Call("purge", {"target": "k"})
        )

        answer = await sec.approve("alice", run["tools"][0])

        if accepted:
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "COMPLETED"
            assert _effects(sec, "purge") == 1
        else:
            assert_error(answer, 403, "unauthorised_decision")
            assert await sec.run(run["run_id"]) == run
            assert _effects(sec, "purge") == 0
            # The API's key is wrong, not the caller: nothing is recorded in the run.
            assert not [
                e for e in await sec.audit(run["run_id"]) if e["kind"] == "approval.refused"
            ]


async def test_forged_update_with_a_decision_source_token_is_refused_too(
    sec: Secure, model: ScriptedModel
) -> None:
    run = await _paused(sec, model, "t")

    cause = await _refused_update(
        sec, run["run_id"], _forged(run["tools"][0], source=DecisionSource.TOKEN, proof="p1.1.x")
    )

    assert cause.type == "unauthorised_decision"
    assert await sec.run(run["run_id"]) == run
    assert _effects(sec, "purge") == 0
