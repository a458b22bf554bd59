"""``/decision-tokens``: decide with a signed link, without other credentials.

The token (issued by ``POST /approvals/{approval_id}/tokens``) is the only
credential: it names the run, the call, the arguments' digest, approve or
reject, the approver and their roles, and a deadline. The decision is recorded
as that approver's, with source ``token``, and with who minted the link. Single
use is the workflow's: a second redemption is refused as ``already_decided``
and changes nothing. An API-key approver is checked again at redemption: a
revoked key or a lost role voids the link.

The token travels in the body, never in the URL, so it does not end up in
access logs or browser history; an e-mail link should open a page that posts it.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, status
from fastapi.responses import Response

from api import policy
from api.auth import key_principal
from api.decisions import DecisionAttempt, decide_one, nothing_to_decide, token_secret
from api.deps import ClientDep, RegistryDep, SettingsDep, WaitsDep
from api.errors import ApiError, responses
from api.forms import TokenRedeemBody, request_body
from api.reads import gated_call, unknown_approval
from api.run_responses import RUN_RESPONSES
from api.schemas import ContinueToolEntry, DecisionTokenRedeem, RunPublic, approval_id
from countersign.client import RunClient
from countersign.models import DecisionSource, Principal
from countersign.security.api_keys import KEY_PRINCIPAL_PREFIX
from countersign.security.decision_tokens import (
    DecisionTokenError,
    TokenClaims,
    TokenErrorCode,
    verify,
)
from countersign.security.jwt_auth import JWT_PREFIX
from countersign.settings import Settings

logger = logging.getLogger("countersign.api")

router = APIRouter(prefix="/decision-tokens", tags=["approvals"])

#: HTTP status of each token refusal: a token that is not ours is unauthenticated.
TOKEN_STATUS: dict[TokenErrorCode, int] = {
    TokenErrorCode.MALFORMED: status.HTTP_401_UNAUTHORIZED,
    TokenErrorCode.BAD_SIGNATURE: status.HTTP_401_UNAUTHORIZED,
    TokenErrorCode.EXPIRED: status.HTTP_410_GONE,
    TokenErrorCode.WRONG_CALL: status.HTTP_409_CONFLICT,
    TokenErrorCode.ARGS_CHANGED: status.HTTP_409_CONFLICT,
}


@router.post(
    "",
    summary="Decide a pending call with a signed decision token",
    description="No credentials besides the token. Answers like `/approvals/*/approve`: the "
    "run once it settles again. A used token is refused with 409 `already_decided`, a token "
    "that was altered or signed with another secret with 401 `token_bad_signature`, an expired "
    "one with 410 `token_expired`.",
    response_model=RunPublic,
    responses={**RUN_RESPONSES, **responses(401, 403, 404, 409, 410, 422, 429, 503)},
    openapi_extra=request_body(
        DecisionTokenRedeem, {"link": {"token": "v1.eyJjIjoi....Zm9v", "note": "ok by mail"}}
    ),
)
async def redeem_token(
    body: TokenRedeemBody,
    client: ClientDep,
    registry: RegistryDep,
    settings: SettingsDep,
    waits: WaitsDep,
) -> Response:
    """Decide the token's call as the token's approver."""
    secret = token_secret(settings)
    try:
        claims = verify(body.token, secret)
    except DecisionTokenError as err:
        # The reason names no part of the token; the token itself is never logged.
        logger.info("refused a decision token: %s", err.code.value)
        raise ApiError(TOKEN_STATUS[err.code], err.code, err.reason) from None
    principal = _current_approver(claims, settings)
    approval = approval_id(claims.run_id, claims.tool_call_id)
    view = await RunClient.of(client, claims.run_id).view()
    call = gated_call(view, claims.tool_call_id)
    if call is None or not policy.can_read(principal, view):
        raise unknown_approval(approval)
    entry = ContinueToolEntry(
        tool_call_id=claims.tool_call_id,
        confirmed=claims.confirmed,
        note=body.note,
        tool_name=call.tool_name,
        args_digest=claims.args_digest,
    )
    if not call.awaiting:
        # Said here even once the run has moved on, so a replayed link reads as
        # what it is rather than as "the run is not paused".
        attempt = DecisionAttempt(
            client,
            None,
            view,
            principal,
            [entry],
            source=DecisionSource.TOKEN,
            minted_by=claims.minted_by,
        )
        await attempt.refuse(nothing_to_decide(call))
    return await decide_one(
        view,
        entry,
        principal,
        source=DecisionSource.TOKEN,
        client=client,
        registry=registry,
        settings=settings,
        waits=waits,
        minted_by=claims.minted_by,
    )


def _current_approver(claims: TokenClaims, settings: Settings) -> Principal:
    """The link's approver, checked against who they are now.

    An API-key approver must still have an active key holding every role the
    link grants: revoking the key, or the role, revokes the link. A JWT
    approver cannot be looked up (the identity provider holds it), so only
    they themselves can have been issued the link.

    Raises:
        ApiError: 403 ``forbidden`` when the approver's key or a role is gone,
            or the link names an id of no known kind.
    """
    principal = Principal(id=claims.approver_id, roles=claims.approver_roles)
    if settings.auth_disabled or principal.id.startswith(JWT_PREFIX):
        return principal
    current = key_principal(settings, principal.id)
    if not principal.id.startswith(KEY_PRINCIPAL_PREFIX):
        raise policy.forbidden(f"the link names {principal.id}, who is no known principal")
    if current is None:
        raise policy.forbidden(f"{principal.id} has no active API key any more: the link is void")
    lost = sorted(set(principal.roles) - set(current.roles))
    if lost:
        raise policy.forbidden(
            f"{principal.id} no longer holds the roles {', '.join(lost)}: the link is void"
        )
    return principal
