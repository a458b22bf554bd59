"""Principal ids carry their issuer, and decision links speak only for real approvers.

API keys authenticate ``key:<id>``, JWTs ``jwt:<issuer>:<sub>``: a token whose
subject is an API-key principal's name is someone else. A link names a real
principal (the minter, or an API-key principal with an active key), records
who minted it, and is checked against the approver's current key and roles
when redeemed.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from countersign.security.api_keys import ApiKeyStore
from tests.api.conftest import assert_error
from tests.scripted_openai import Call, ScriptedModel
from tests.security.conftest import AGENT, Secure


def _effects(sec: Secure, tool_name: str) -> int:
    return sum(1 for n in sec.db.notifications() if n.recipient == tool_name)


async def _paused(sec: Secure, model: ScriptedModel, call: Call | None = None) -> dict[str, Any]:
    call = call or Call("purge", {"target": uuid.uuid4().hex})
    return await sec.start(model, "rita", f"ops {uuid.uuid4().hex}", call)


def _revoke_all(sec: Secure, name: str) -> None:
    store = ApiKeyStore(sec.settings.api_keys_file)
    for record in store.records():
        if record.principal_id == name and record.active:
            store.revoke(record.key_id)


async def test_wire_shows_prefixed_ids_and_a_jwt_named_like_a_key_is_someone_else(
    sec: Secure, model: ScriptedModel
) -> None:
    run = await _paused(sec, model)
    assert (run["user_id"], run["requester"]) == ("key:rita", "key:rita")
    impostor = sec.jwt("rita", ["requester"])
    url = f"/agents/{AGENT}/runs/{run['run_id']}"

    read = await sec.http.get(url, headers={"Authorization": f"Bearer {impostor}"})
    decide = await sec.http.post(
        f"{url}/continue",
        json={"tools": [{"tool_call_id": run["tools"][0]["tool_call_id"], "confirmed": True}]},
        headers={"Authorization": f"Bearer {impostor}"},
    )

    # Not the requester of rita's run: it may not even see it.
    assert_error(read, 404, "unknown_run")
    assert_error(decide, 404, "unknown_run")
    assert await sec.run(run["run_id"]) == run
    assert _effects(sec, "purge") == 0


async def test_no_link_for_an_invented_approver_or_role(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    call = run["tools"][0]

    ghost = await sec.mint("ada", call, approver_id="ghost1", approver_roles=["admin"])
    ghost_key = await sec.mint("ada", call, approver_id="key:ghost2", approver_roles=["admin"])
    jwt_subject = await sec.mint("ada", call, approver_id=sec.pid("alice"))
    extra_role = await sec.mint("ada", call, approver_id="key:bob", approver_roles=["admin"])

    for answer in (ghost, ghost_key, jwt_subject, extra_role):
        assert_error(answer, 403, "forbidden")
    assert await sec.run(run["run_id"]) == run


async def test_link_records_its_minter_and_counts_for_its_approver_only(
    sec: Secure, model: ScriptedModel
) -> None:
    run = await _paused(sec, model, Call("wire_money", {"amount": 9}))
    call = run["tools"][0]
    minted = await sec.mint("ada", call, approver_id="key:bob")
    assert minted.status_code == 201, minted.text
    assert (minted.json()["approver_id"], minted.json()["approver_roles"]) == (
        "key:bob",
        ["approver"],
    )

    used = await sec.redeem(minted.json()["token"])
    # bob already approved through his link: his own approval is not a second one.
    again = await sec.approve("bob", call)

    assert used.status_code == 200, used.text
    assert_error(again, 409, "already_approved_by_principal")
    decided = [e for e in await sec.audit(run["run_id"]) if e["kind"] == "approval.decided"]
    assert [(e["principal"]["id"], e["source"], e["data"]["minted_by"]) for e in decided] == [
        ("key:bob", "token", "key:ada")
    ]
    assert _effects(sec, "wire_money") == 0


async def test_link_void_once_the_approvers_key_is_revoked(
    sec: Secure, model: ScriptedModel
) -> None:
    run = await _paused(sec, model)
    minted = await sec.mint("ada", run["tools"][0], approver_id="key:bob")
    assert minted.status_code == 201, minted.text

    _revoke_all(sec, "bob")
    used = await sec.redeem(minted.json()["token"])

    assert "no active API key" in assert_error(used, 403, "forbidden")
    assert await sec.run(run["run_id"]) == run
    assert _effects(sec, "purge") == 0


async def test_link_void_once_the_approver_lost_the_role(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model, Call("drop_table", {"name": "orders"}))
    minted = await sec.mint("dora", run["tools"][0])
    assert minted.status_code == 201, minted.text
    assert minted.json()["approver_roles"] == ["approver", "dba"]

    # dora's key is replaced by one without the dba role.
    _revoke_all(sec, "dora")
    ApiKeyStore(sec.settings.api_keys_file).create("dora", ["approver"])
    used = await sec.redeem(minted.json()["token"])

    assert "no longer holds the roles dba" in assert_error(used, 403, "forbidden")
    assert await sec.run(run["run_id"]) == run
    assert _effects(sec, "drop_table") == 0


async def test_two_redemptions_of_one_link_at_once_exactly_one_wins(
    sec: Secure, model: ScriptedModel
) -> None:
    run = await _paused(sec, model)
    minted = await sec.mint("bob", run["tools"][0])
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]

    answers = await asyncio.gather(sec.redeem(token), sec.redeem(token))

    assert sorted(a.status_code for a in answers) == [200, 409]
    [lost] = [a for a in answers if a.status_code == 409]
    assert_error(lost, 409, "already_decided")
    assert _effects(sec, "purge") == 1
    final = await sec.run(run["run_id"])
    assert [d["principal_id"] for d in final["tools"][0]["decisions"]] == ["key:bob"]
