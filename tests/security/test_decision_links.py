"""Signed decision links through the real API: issue, redeem once, refuse the rest."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from api.main import create_app
from countersign.security import decision_tokens
from countersign.settings import Settings
from tests.api.conftest import assert_error
from tests.scripted_openai import Call, ScriptedModel
from tests.security.conftest import Secure, SecureFactory


async def _paused(sec: Secure, model: ScriptedModel, *calls: Call) -> dict[str, Any]:
    calls = calls or (Call("purge", {"target": "t"}),)
    return await sec.start(model, "rita", f"link {uuid.uuid4().hex}", *calls)


def _effects(sec: Secure) -> int:
    return sum(1 for n in sec.db.notifications() if n.recipient == "purge")


async def _token(sec: Secure, who: str, call: dict[str, Any], **body: Any) -> str:
    response = await sec.mint(who, call, **body)
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


async def test_redeem_token_decides_as_its_approver_once(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    call = run["tools"][0]
    minted = await sec.mint("alice", call)
    assert minted.status_code == 201, minted.text
    grant = minted.json()
    assert (grant["approver_id"], grant["confirmed"], grant["args_digest"]) == (
        "jwt:-:alice",
        True,
        call["args_digest"],
    )
    assert datetime.fromisoformat(grant["expires_at"]) <= datetime.fromisoformat(call["expires_at"])

    used = await sec.redeem(grant["token"], note="by mail")

    assert used.status_code == 200, used.text
    tool = used.json()["tools"][0]
    assert tool["state"] == "EXECUTED"
    [decision] = tool["decisions"]
    assert (decision["principal_id"], decision["roles"], decision["source"]) == (
        "jwt:-:alice",
        ["approver"],
        "token",
    )
    assert decision["note"] == "by mail"
    done = await sec.run(run["run_id"])

    replayed = await sec.redeem(grant["token"])

    assert "already decided by jwt:-:alice" in assert_error(replayed, 409, "already_decided")
    assert await sec.run(run["run_id"]) == done
    assert _effects(sec) == 1


async def test_redeem_replayed_token_in_open_batch_refused_and_audited(
    sec: Secure, model: ScriptedModel
) -> None:
    run = await _paused(sec, model, Call("purge", {"target": "a"}), Call("purge", {"target": "b"}))
    token = await _token(sec, "alice", run["tools"][0])
    assert (await sec.redeem(token)).status_code == 200
    before = await sec.run(run["run_id"])

    replayed = await sec.redeem(token)

    assert_error(replayed, 409, "already_decided")
    assert await sec.run(run["run_id"]) == before
    refused = [e for e in await sec.audit(run["run_id"]) if e["kind"] == "approval.refused"]
    assert [(e["principal"]["id"], e["source"], e["data"]["code"]) for e in refused] == [
        ("jwt:-:alice", "token", "already_decided")
    ]


async def test_redeem_reject_token_rejects(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    token = await _token(sec, "alice", run["tools"][0], confirmed=False)

    response = await sec.redeem(token, note="not today")

    assert response.status_code == 200, response.text
    tool = response.json()["tools"][0]
    assert (tool["state"], tool["result"]) == ("REJECTED", "rejected by jwt:-:alice: not today")
    assert _effects(sec) == 0


async def test_redeem_tampered_token_401_unchanged(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    token = await _token(sec, "alice", run["tools"][0], confirmed=False)
    version, payload, signature = token.split(".")
    # Turn the reject link into an approve link by editing its payload.
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    claims = decision_tokens.TokenClaims.model_validate_json(raw)
    flipped = claims.model_copy(update={"confirmed": True}).model_dump_json(by_alias=True)
    edited = base64.urlsafe_b64encode(flipped.encode()).rstrip(b"=").decode()
    forged = sec.remember(f"{version}.{edited}.{signature}")

    response = await sec.redeem(forged)

    assert_error(response, 401, "token_bad_signature")
    assert await sec.run(run["run_id"]) == run


async def test_redeem_token_signed_with_another_secret_401(
    sec: Secure, model: ScriptedModel
) -> None:
    run = await _paused(sec, model)
    call = run["tools"][0]
    forged = decision_tokens.issue(
        "x" * 40,
        run_id=run["run_id"],
        tool_call_id=call["tool_call_id"],
        args_digest=call["args_digest"],
        confirmed=True,
        approver_id="ada",
        approver_roles=("admin",),
        call_expires_at=datetime.fromisoformat(call["expires_at"]),
    )

    response = await sec.redeem(sec.remember(forged))

    assert_error(response, 401, "token_bad_signature")
    assert await sec.run(run["run_id"]) == run


async def test_redeem_garbage_token_401(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    response = await sec.redeem("not-a-token")
    assert_error(response, 401, "token_malformed")
    assert await sec.run(run["run_id"]) == run


async def test_redeem_expired_token_410_unchanged(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    call = run["tools"][0]
    assert sec.settings.decision_token_secret is not None
    issued_at = datetime.now(UTC) - timedelta(hours=1)
    expired = decision_tokens.issue(
        sec.settings.decision_token_secret.get_secret_value(),
        run_id=run["run_id"],
        tool_call_id=call["tool_call_id"],
        args_digest=call["args_digest"],
        confirmed=True,
        approver_id="alice",
        approver_roles=("approver",),
        call_expires_at=datetime.fromisoformat(call["expires_at"]),
        ttl=timedelta(minutes=5),
        now=issued_at,
    )

    response = await sec.redeem(sec.remember(expired))

    assert_error(response, 410, "token_expired")
    assert await sec.run(run["run_id"]) == run


async def test_redeem_token_with_other_digest_409_unchanged(
    sec: Secure, model: ScriptedModel
) -> None:
    run = await _paused(sec, model)
    call = run["tools"][0]
    assert sec.settings.decision_token_secret is not None
    other = decision_tokens.issue(
        sec.settings.decision_token_secret.get_secret_value(),
        run_id=run["run_id"],
        tool_call_id=call["tool_call_id"],
        args_digest="0" * 64,
        confirmed=True,
        approver_id=sec.pid("alice"),
        approver_roles=("approver",),
        call_expires_at=datetime.fromisoformat(call["expires_at"]),
    )

    response = await sec.redeem(sec.remember(other))

    assert_error(response, 409, "args_mismatch")
    assert await sec.run(run["run_id"]) == run


async def test_mint_for_another_approver_admin_only(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    call = run["tools"][0]

    bob = sec.pid("bob")
    by_approver = await sec.mint("alice", call, approver_id=bob, approver_roles=["approver"])
    assert_error(by_approver, 403, "forbidden")
    token = await _token(sec, "ada", call, approver_id=bob, approver_roles=["approver"])
    used = await sec.redeem(token)

    assert used.status_code == 200, used.text
    [decision] = used.json()["tools"][0]["decisions"]
    assert (decision["principal_id"], decision["roles"]) == (bob, ["approver"])


async def test_mint_without_tool_role_403(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model, Call("drop_table", {"name": "users"}))
    response = await sec.mint("alice", run["tools"][0])
    assert_error(response, 403, "approver_role_required")
    assert (await sec.mint("dora", run["tools"][0])).status_code == 201
    assert await sec.run(run["run_id"]) == run


async def test_mint_decided_call_409(sec: Secure, model: ScriptedModel) -> None:
    run = await _paused(sec, model)
    assert (await sec.approve("alice", run["tools"][0])).status_code == 200
    response = await sec.mint("alice", run["tools"][0])
    assert_error(response, 409, "already_decided")


async def test_tokens_disabled_without_secret_404(
    secure_api: SecureFactory, model: ScriptedModel
) -> None:
    async with secure_api(decision_token_secret=None) as sec:
        run = await _paused(sec, model)
        minted = await sec.mint("alice", run["tools"][0])
        redeemed = await sec.redeem("v1.abc.def")

        assert_error(minted, 404, "decision_tokens_disabled")
        assert_error(redeemed, 404, "decision_tokens_disabled")
        assert await sec.run(run["run_id"]) == run


def test_create_app_short_token_secret_refused() -> None:
    settings = Settings.model_validate(
        {"decision_token_secret": SecretStr("short"), "auth_disabled": False}
    )
    with pytest.raises(ValueError, match="at least 32 bytes"):
        create_app(settings)
