"""Who is calling: the principal behind a request, and what it may do.

Credentials, in order:

- ``X-API-Key: <key>``, or ``Authorization: Bearer <key>`` where the key has
  the ``csk_`` shape: looked up in the hashed key store
  (``COUNTERSIGN_API_KEYS_FILE``, see ``countersign keys``);
- ``Authorization: Bearer <JWT>``: HS256, or RS256/ES256 with a public key
  or the identity provider's JWKS, see ``countersign.security.jwt_auth``.

Development mode (``COUNTERSIGN_AUTH_DISABLED=true``) trusts the caller's
``user_id`` and grants every role; whoever starts the API announces it.

Errors are raised as :class:`AuthError`, an ``HTTPException`` whose ``detail``
is the whole JSON body ``{"detail": <message>, "code": <code>}``; the API's
exception handler renders it as is (:func:`render_http_exception` does that
for any ``HTTPException``). Credentials are never logged nor echoed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.errors import code_of_status
from countersign.models import ErrorCode, Principal
from countersign.security.api_keys import ApiKeyError, ApiKeyStore, looks_like_api_key
from countersign.security.jwt_auth import (
    JwksUnavailableError,
    JwtConfig,
    JwtConfigError,
    JwtError,
    JwtVerifier,
    looks_like_jwt,
)
from countersign.settings import Settings

logger = logging.getLogger(__name__)

DEV_ROLES = ("requester", "approver", "viewer", "admin")
#: Development-mode principals are ``dev:<user_id>``, apart from every real identity.
DEV_PREFIX = "dev:"


class AuthError(HTTPException):
    """An HTTP error whose ``detail`` is the JSON body ``{"detail", "code"}``.

    Args:
        status_code: The HTTP status.
        code: Stable machine-readable reason.
        message: Human-readable reason.
        headers: Extra response headers.
    """

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            status_code=status_code, detail={"detail": message, "code": code}, headers=headers
        )
        self.code = code
        self.message = message


def unauthenticated(message: str, *, token_presented: bool = False) -> AuthError:
    """A 401 ``unauthenticated`` error with the RFC 6750 challenge."""
    challenge = 'Bearer error="invalid_token"' if token_presented else "Bearer"
    return AuthError(
        status.HTTP_401_UNAUTHORIZED,
        ErrorCode.UNAUTHENTICATED,
        message,
        headers={"WWW-Authenticate": challenge},
    )


def forbidden(message: str) -> AuthError:
    """A 403 ``forbidden`` error."""
    return AuthError(status.HTTP_403_FORBIDDEN, ErrorCode.FORBIDDEN, message)


def require_roles(principal: Principal, *roles: str) -> Principal:
    """Check that ``principal`` holds one of ``roles``; ``admin`` holds them all.

    Returns:
        The principal, so a dependency can return this call.

    Raises:
        AuthError: 403 ``forbidden`` naming the roles required.
    """
    if not principal.has_any_role(list(roles)):
        raise forbidden(f"this needs one of the roles: {', '.join(roles)}")
    return principal


async def render_http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Render any ``HTTPException`` as ``{"detail", "code"}`` (an exception handler).

    ``AuthError`` bodies pass through as they are; other ``HTTPException``s get a
    code derived from their status.
    """
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    if isinstance(exc.detail, dict) and "code" in exc.detail:
        body = exc.detail
    else:
        body = {"detail": exc.detail, "code": code_of_status(exc.status_code)}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


@lru_cache(maxsize=8)
def _key_store(path: Path) -> ApiKeyStore:
    # One store per file, so its reload-on-change cache lives across requests.
    return ApiKeyStore(path)


@lru_cache(maxsize=8)
def _jwt_verifier(config: JwtConfig) -> JwtVerifier:
    return JwtVerifier(config)


async def _claimed_user_id(request: Request) -> str | None:
    """``user_id`` from the query, a form body or a JSON body (dev mode only)."""
    if value := request.query_params.get("user_id"):
        return value
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        field = form.get("user_id")
        return field if isinstance(field, str) and field else None
    if content_type.startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            return None
        if isinstance(body, dict) and isinstance(body.get("user_id"), str):
            return body["user_id"] or None
    return None


def _credential(request: Request) -> tuple[str, bool] | None:
    """The presented credential and whether it came as ``X-API-Key``."""
    api_key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization")
    if api_key is not None and authorization is not None:
        raise unauthenticated("send either X-API-Key or Authorization, not both")
    if api_key is not None:
        return api_key.strip(), True
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise unauthenticated("the Authorization header must be 'Bearer <credential>'")
    return value.strip(), False


def _misconfigured(message: str) -> AuthError:
    logger.error("authentication is misconfigured: %s", message)
    return AuthError(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        ErrorCode.AUTH_MISCONFIGURED,
        "authentication is misconfigured on the server; see its log",
    )


def _lookup_key(settings: Settings, key: str) -> Principal:
    try:
        principal = _key_store(settings.api_keys_file).lookup(key)
    except ApiKeyError as exc:
        raise _misconfigured(str(exc)) from exc
    if principal is None:
        raise unauthenticated("unknown or revoked API key", token_presented=True)
    return principal


def key_principal(settings: Settings, principal_id: str) -> Principal | None:
    """The API-key principal ``key:<id>`` as its active keys make it now, or ``None``.

    ``None`` also for an id of another kind (a JWT subject cannot be looked up:
    the identity provider holds it).

    Raises:
        AuthError: 500 ``auth_misconfigured`` when the key file is unreadable.
    """
    try:
        return _key_store(settings.api_keys_file).current(principal_id)
    except ApiKeyError as exc:
        raise _misconfigured(str(exc)) from exc


async def _verify_jwt(settings: Settings, token: str) -> Principal:
    config = JwtConfig.from_settings(settings)
    if not config.enabled:
        raise unauthenticated("JWT authentication is not configured", token_presented=True)
    try:
        verifier = _jwt_verifier(config)
        if verifier.may_fetch:
            # A JWKS fetch is blocking I/O: keep it off the event loop.
            return await asyncio.to_thread(verifier.verify, token)
        return verifier.verify(token)
    except JwtConfigError as exc:
        raise _misconfigured(str(exc)) from exc
    except JwksUnavailableError as exc:
        logger.error("JWT keys unavailable: %s", exc)
        raise AuthError(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            ErrorCode.JWKS_UNAVAILABLE,
            "the identity provider's keys cannot be fetched; try again later",
            headers={"Retry-After": "5"},
        ) from exc
    except JwtError as exc:
        raise unauthenticated(exc.reason, token_presented=True) from exc


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def dev_mode_problem(settings: Settings) -> str | None:
    """Why these settings must not serve, or ``None``: development mode binds loopback only."""
    if settings.auth_disabled and not is_loopback(settings.api_host):
        return (
            f"development mode (COUNTERSIGN_AUTH_DISABLED=true) trusts every caller, so it "
            f"serves loopback only; COUNTERSIGN_API_HOST={settings.api_host} is not"
        )
    return None


def _local_name(host: str) -> bool:
    # A loopback name or address, or a single-label name (a test client's
    # "testserver"): DNS rebinding needs a public name, which has a dot.
    return is_loopback(host) or ("." not in host and ":" not in host.strip("[]"))


def _check_local_request(request: Request) -> None:
    """Refuse what a web page on another site could send to a development API.

    Development mode trusts the caller's ``user_id``, so a cross-site form post
    from the browser of whoever runs it could start runs and approve calls as
    anyone; a rebound DNS name could read them. Browsers send ``Origin`` on
    such posts and the rebound name as ``Host``.

    Raises:
        AuthError: 403 ``forbidden``.
    """
    host = urlsplit(f"//{request.headers.get('host', '')}").hostname or ""
    if not _local_name(host):
        raise forbidden(f"development mode answers only loopback hosts, not {host!r}")
    origin = request.headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not _local_name(parts.hostname or ""):
            raise forbidden("development mode refuses requests from other sites (Origin)")
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise forbidden("development mode refuses requests from other sites (Sec-Fetch-Site)")


async def authenticate(request: Request, settings: Settings) -> Principal:
    """The principal of a request.

    Also stored as ``request.state.principal`` for logging and rate limits.

    Raises:
        AuthError: 401 ``unauthenticated`` (with ``WWW-Authenticate: Bearer``)
            when the request carries no valid credential; 500
            ``auth_misconfigured`` when the key file or JWT keys are unusable.
    """
    if settings.auth_disabled:
        _check_local_request(request)
        # Development mode trusts the caller's user_id (the AgentOS wire format's own field).
        user = await _claimed_user_id(request) or "dev-user"
        principal = Principal(id=DEV_PREFIX + user, roles=DEV_ROLES)
    else:
        presented = _credential(request)
        if presented is None:
            raise unauthenticated(
                "credentials required: send 'Authorization: Bearer <API key or JWT>' "
                "or 'X-API-Key: <API key>'"
            )
        credential, as_api_key_header = presented
        if as_api_key_header or looks_like_api_key(credential):
            principal = _lookup_key(settings, credential)
        elif looks_like_jwt(credential):
            principal = await _verify_jwt(settings, credential)
        else:
            raise unauthenticated(
                "the credential is neither an API key nor a JWT", token_presented=True
            )
    request.state.principal = principal
    return principal
