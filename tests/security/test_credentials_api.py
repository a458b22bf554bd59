"""Bad credentials through the real API: 401 with a precise reason, the run untouched.

And the principal always comes from the credentials: a ``user_id`` in the body
names nobody when authentication is on.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt

from countersign.security.api_keys import ApiKeyStore
from tests.api.conftest import assert_error
from tests.scripted_openai import Call, ScriptedModel
from tests.security.conftest import AGENT, Secure


async def _paused(sec: Secure, model: ScriptedModel) -> dict[str, Any]:
    return await sec.start(
        model, "rita", f"purge {secrets.token_hex(4)}", Call("purge", {"target": "t"})
    )


async def _approve_with(sec: Secure, run: dict[str, Any], credential: str) -> Any:
    return await sec.http.post(
        f"/approvals/{run['tools'][0]['approval_id']}/approve",
        headers={"Authorization": f"Bearer {credential}"},
    )


async def _assert_refused(sec: Secure, run: dict[str, Any], credential: str, reason: str) -> None:
    response = await _approve_with(sec, run, credential)
    assert assert_error(response, 401, "unauthenticated") == reason
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert await sec.run(run["run_id"]) == run
    assert sec.db.notifications() == []


async def test_approve_jwt_signed_with_another_secret_401(
    sec: Secure, model: ScriptedModel
) -> None:
    run = await _paused(sec, model)
    forged = jwt.encode(
        {"sub": "alice", "roles": ["admin"], "exp": int(time.time()) + 60},
        secrets.token_urlsafe(40),
        "HS256",
    )
    await _assert_refused(sec, run, sec.remember(forged), "token signature is invalid")


async def test_approve_expired_jwt_401(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    # Beyond the 30 s leeway.
    expired = sec.jwt("alice", ["approver"], ttl=-120)
    await _assert_refused(sec, run, expired, "token expired")


async def test_approve_jwt_with_tampered_roles_401(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    header, _, signature = sec.jwt("vera", ["viewer"]).split(".")
    claims = jwt.utils.base64url_encode(
        f'{{"sub":"vera","roles":["admin"],"exp":{int(time.time()) + 60}}}'.encode()
    ).decode()
    forged = sec.remember(f"{header}.{claims}.{signature}")
    await _assert_refused(sec, run, forged, "token signature is invalid")


async def test_approve_unsigned_jwt_401(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    unsigned = jwt.encode(
        {"sub": "alice", "roles": ["admin"], "exp": int(time.time()) + 60}, None, "none"
    )
    await _assert_refused(sec, run, unsigned, "token algorithm 'none' is not accepted")


async def test_approve_unknown_api_key_401(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    real = sec.credentials["bob"]
    # Same shape and key id, another secret: the hash does not match.
    tail = "zzzz" if not real.endswith("zzzz") else "yyyy"
    wrong = sec.remember(real[:-4] + tail)
    await _assert_refused(sec, run, wrong, "unknown or revoked API key")


async def test_approve_revoked_api_key_401(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    store = ApiKeyStore(sec.settings.api_keys_file)
    created = store.create("carol", ["approver"])
    key = sec.remember(created.key)
    store.revoke(created.record.key_id)
    await _assert_refused(sec, run, key, "unknown or revoked API key")


async def test_approve_without_credentials_401(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    response = await sec.http.post(f"/approvals/{run['tools'][0]['approval_id']}/approve")
    assert_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    assert await sec.run(run["run_id"]) == run


async def test_create_run_user_id_in_body_is_ignored(sec: Secure, model: ScriptedModel) -> None:
    response = await sec.http.post(
        f"/agents/{AGENT}/runs",
        data={"message": "who am i", "user_id": "ada"},
        headers=sec.auth("rita"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    sec.run_ids.add(body["run_id"])
    assert (body["user_id"], body["requester"]) == ("key:rita", "key:rita")


async def test_continue_user_id_in_body_is_ignored(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    call = run["tools"][0]
    response = await sec.http.post(
        f"/agents/{AGENT}/runs/{run['run_id']}/continue",
        json={
            "tools": [{"tool_call_id": call["tool_call_id"], "confirmed": True}],
            "user_id": "ada",
        },
        headers=sec.auth("alice"),
    )
    assert response.status_code == 200, response.text
    [decision] = response.json()["tools"][0]["decisions"]
    assert (decision["principal_id"], decision["roles"]) == ("jwt:-:alice", ["approver"])


async def test_approve_jwt_principal_recorded(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    token = sec.jwt("jess", ["approver", "finance"])
    response = await _approve_with(sec, run, token)
    assert response.status_code == 200, response.text
    [decision] = response.json()["tools"][0]["decisions"]
    assert (decision["principal_id"], decision["roles"]) == ("jwt:-:jess", ["approver", "finance"])
