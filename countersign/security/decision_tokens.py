"""Signed decision tokens: one-click approve or reject links.

A token is ``v1.<payload>.<signature>``, both parts unpadded URL-safe base64;
the payload is canonical JSON of :class:`TokenClaims` in short keys and the
signature is HMAC-SHA256 with ``COUNTERSIGN_DECISION_TOKEN_SECRET`` over
``v1.<payload>``. A token binds one run, one tool call, the call's
``args_digest``, the decision (approve or reject: each link is its own token),
the approver it was issued to and their roles (the decision is recorded as
theirs, and the workflow checks those roles), and an expiry no later than the call's own
``expires_at``.

Single use is NOT tracked here: the workflow accepts one decision per call and
refuses any later one (``already_decided``), so a replayed token changes
nothing. Likewise a token whose call's arguments were edited no longer matches
the digest the API passes to :func:`verify`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from countersign.digest import canonical_json

VERSION = "v1"
MIN_SECRET_BYTES = 32


class TokenErrorCode(StrEnum):
    """Why a decision token was refused."""

    MALFORMED = "token_malformed"
    BAD_SIGNATURE = "token_bad_signature"
    EXPIRED = "token_expired"
    WRONG_CALL = "token_wrong_call"
    ARGS_CHANGED = "token_args_changed"


class DecisionTokenError(Exception):
    """A decision token was refused.

    Attributes:
        code: Machine-readable reason.
        reason: Human-readable reason, free of secrets.
    """

    def __init__(self, code: TokenErrorCode, reason: str) -> None:
        super().__init__(f"{code.value}: {reason}")
        self.code = code
        self.reason = reason


class TokenClaims(BaseModel):
    """What a decision token grants."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    run_id: str = Field(alias="r")
    tool_call_id: str = Field(alias="c")
    args_digest: str = Field(alias="d")
    confirmed: bool = Field(alias="k")
    approver_id: str = Field(alias="p")
    approver_roles: tuple[str, ...] = Field((), alias="g")
    minted_by: str | None = Field(None, alias="m", description="Who issued the link")
    issued_at: int = Field(alias="i", description="Unix seconds")
    expires_at: int = Field(alias="e", description="Unix seconds")

    @property
    def expires(self) -> datetime:
        """The expiry as an aware datetime."""
        return datetime.fromtimestamp(self.expires_at, UTC)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(secret: str) -> bytes:
    key = secret.encode()
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"the decision token secret must be at least {MIN_SECRET_BYTES} bytes")
    return key


def _sign(secret: str, signing_input: str) -> bytes:
    return hmac.new(_key(secret), signing_input.encode(), hashlib.sha256).digest()


def issue(
    secret: str,
    *,
    run_id: str,
    tool_call_id: str,
    args_digest: str,
    confirmed: bool,
    approver_id: str,
    call_expires_at: datetime,
    approver_roles: tuple[str, ...] = (),
    minted_by: str | None = None,
    ttl: timedelta | None = None,
    now: datetime | None = None,
) -> str:
    """Issue a token for one decision on one call.

    Args:
        secret: ``COUNTERSIGN_DECISION_TOKEN_SECRET`` (at least 32 bytes).
        run_id: The run.
        tool_call_id: The pending call.
        args_digest: The call's ``args_digest`` as shown to the approver.
        confirmed: True for the approve link, False for the reject link.
        approver_id: The principal the link is sent to; the decision is
            recorded as theirs.
        call_expires_at: The call's ``expires_at``; the token never outlives it.
        approver_roles: The approver's roles, recorded with the decision and
            checked by the workflow against the tool's ``approver_roles``.
        minted_by: Who issued the link; recorded with the decision.
        ttl: A shorter lifetime, if wanted.
        now: The current time (for tests).

    Returns:
        The compact, URL-safe token.

    Raises:
        ValueError: When the secret is too short or the token would already be
            expired.
    """
    now = now or datetime.now(UTC)
    expiry = call_expires_at if ttl is None else min(call_expires_at, now + ttl)
    if expiry <= now:
        raise ValueError("the call's confirmation has already expired")
    claims = TokenClaims(
        run_id=run_id,
        tool_call_id=tool_call_id,
        args_digest=args_digest,
        confirmed=confirmed,
        approver_id=approver_id,
        approver_roles=tuple(approver_roles),
        minted_by=minted_by,
        issued_at=int(now.timestamp()),
        # Round down so the token never outlives the call by a fraction of a second.
        expires_at=int(expiry.timestamp()),
    )
    payload = _b64(canonical_json(claims.model_dump(by_alias=True)).encode())
    signing_input = f"{VERSION}.{payload}"
    return f"{signing_input}.{_b64(_sign(secret, signing_input))}"


def verify(
    token: str,
    secret: str,
    *,
    run_id: str | None = None,
    tool_call_id: str | None = None,
    args_digest: str | None = None,
    now: datetime | None = None,
) -> TokenClaims:
    """Check a token's signature, expiry and binding.

    Args:
        token: The token from the link.
        secret: ``COUNTERSIGN_DECISION_TOKEN_SECRET``.
        run_id: When given, the token must be for this run.
        tool_call_id: When given, the token must be for this call.
        args_digest: When given (the pending call's current digest), the token
            must have been issued for exactly these arguments.
        now: The current time (for tests).

    Returns:
        The token's claims.

    Raises:
        DecisionTokenError: ``token_malformed``, ``token_bad_signature``,
            ``token_expired``, ``token_wrong_call`` or ``token_args_changed``.
    """
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise DecisionTokenError(TokenErrorCode.MALFORMED, "not a decision token")
    version, payload, signature = parts
    try:
        given = _unb64(signature)
        raw = _unb64(payload)
    except (binascii.Error, ValueError) as exc:
        raise DecisionTokenError(TokenErrorCode.MALFORMED, "token is not base64url") from exc
    # Signature first: nothing from an unauthenticated payload is trusted.
    if not hmac.compare_digest(given, _sign(secret, f"{version}.{payload}")):
        raise DecisionTokenError(TokenErrorCode.BAD_SIGNATURE, "token signature is invalid")
    try:
        claims = TokenClaims.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise DecisionTokenError(TokenErrorCode.MALFORMED, "token payload is invalid") from exc
    now = now or datetime.now(UTC)
    if now.timestamp() >= claims.expires_at:
        raise DecisionTokenError(
            TokenErrorCode.EXPIRED, f"token expired at {claims.expires.isoformat()}"
        )
    if (run_id is not None and claims.run_id != run_id) or (
        tool_call_id is not None and claims.tool_call_id != tool_call_id
    ):
        raise DecisionTokenError(TokenErrorCode.WRONG_CALL, "token is for another tool call")
    if args_digest is not None and not hmac.compare_digest(claims.args_digest, args_digest):
        raise DecisionTokenError(
            TokenErrorCode.ARGS_CHANGED, "the call's arguments changed since the token was issued"
        )
    return claims
