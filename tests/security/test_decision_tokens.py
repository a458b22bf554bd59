"""Signed decision tokens: bound to one call, its arguments and a deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from countersign.security.decision_tokens import (
    DecisionTokenError,
    TokenErrorCode,
    issue,
    verify,
)

SECRET = "t" * 40
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CALL_EXPIRES = NOW + timedelta(hours=24)
DIGEST = "a" * 64


def make_token(**overrides: object) -> str:
    values: dict[str, object] = {
        "run_id": "run-1",
        "tool_call_id": "call-1",
        "args_digest": DIGEST,
        "confirmed": True,
        "approver_id": "alice",
        "call_expires_at": CALL_EXPIRES,
        "now": NOW,
    }
    values.update(overrides)
    return issue(SECRET, **values)  # type: ignore[arg-type]


def test_verify_valid_token_returns_claims() -> None:
    token = make_token()

    claims = verify(
        token, SECRET, run_id="run-1", tool_call_id="call-1", args_digest=DIGEST, now=NOW
    )

    assert claims.run_id == "run-1"
    assert claims.tool_call_id == "call-1"
    assert claims.confirmed is True
    assert claims.approver_id == "alice"
    assert claims.expires == CALL_EXPIRES
    assert all(c.isalnum() or c in "-_." for c in token)


def test_issue_ttl_never_outlives_the_call() -> None:
    short = make_token(ttl=timedelta(hours=1))
    long = make_token(ttl=timedelta(days=7))

    assert verify(short, SECRET, now=NOW).expires == NOW + timedelta(hours=1)
    assert verify(long, SECRET, now=NOW).expires == CALL_EXPIRES


def test_verify_tampered_payload_raises_bad_signature() -> None:
    reject = make_token(confirmed=False)
    approve = make_token(confirmed=True)
    version, _, signature = reject.split(".")
    spliced = f"{version}.{approve.split('.')[1]}.{signature}"

    with pytest.raises(DecisionTokenError) as caught:
        verify(spliced, SECRET, now=NOW)
    assert caught.value.code is TokenErrorCode.BAD_SIGNATURE


def test_verify_other_secret_raises_bad_signature() -> None:
    with pytest.raises(DecisionTokenError) as caught:
        verify(make_token(), "u" * 40, now=NOW)
    assert caught.value.code is TokenErrorCode.BAD_SIGNATURE


def test_verify_expired_raises() -> None:
    token = make_token(ttl=timedelta(minutes=5))

    with pytest.raises(DecisionTokenError) as caught:
        verify(token, SECRET, now=NOW + timedelta(minutes=5))
    assert caught.value.code is TokenErrorCode.EXPIRED


def test_verify_wrong_call_raises() -> None:
    token = make_token()

    with pytest.raises(DecisionTokenError) as caught:
        verify(token, SECRET, run_id="run-1", tool_call_id="call-2", now=NOW)
    assert caught.value.code is TokenErrorCode.WRONG_CALL
    with pytest.raises(DecisionTokenError) as caught:
        verify(token, SECRET, run_id="run-2", tool_call_id="call-1", now=NOW)
    assert caught.value.code is TokenErrorCode.WRONG_CALL


def test_verify_changed_digest_raises() -> None:
    with pytest.raises(DecisionTokenError) as caught:
        verify(make_token(), SECRET, args_digest="b" * 64, now=NOW)
    assert caught.value.code is TokenErrorCode.ARGS_CHANGED


def test_verify_garbage_raises_malformed() -> None:
    for garbage in ("", "v1.abc", "v2.a.b", "v1.!!!.???"):
        with pytest.raises(DecisionTokenError) as caught:
            verify(garbage, SECRET, now=NOW)
        assert caught.value.code in (TokenErrorCode.MALFORMED, TokenErrorCode.BAD_SIGNATURE)


def test_issue_short_secret_raises() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        issue(
            "short",
            run_id="r",
            tool_call_id="c",
            args_digest=DIGEST,
            confirmed=True,
            approver_id="alice",
            call_expires_at=CALL_EXPIRES,
            now=NOW,
        )


def test_issue_after_call_expiry_raises() -> None:
    with pytest.raises(ValueError, match="already expired"):
        make_token(now=CALL_EXPIRES)
