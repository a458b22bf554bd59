"""Who is calling: the principal behind a request.

This first version only knows development mode (``COUNTERSIGN_AUTH_DISABLED``);
API keys and JWT come next (DESIGN §6). Routes depend on
``api.deps.CurrentPrincipal`` and never on this module's internals.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, status

from countersign.models import Principal
from countersign.settings import Settings

DEV_ROLES = ("requester", "approver", "viewer", "admin")


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


async def authenticate(request: Request, settings: Settings) -> Principal:
    """The principal of a request.

    Raises:
        HTTPException: 401 when the request carries no valid credentials.
    """
    if settings.auth_disabled:
        # Development mode trusts the caller's user_id, as the seed's server does.
        user = await _claimed_user_id(request) or "dev-user"
        return Principal(id=user, roles=DEV_ROLES)
    raise HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="authentication is not configured: set COUNTERSIGN_AUTH_DISABLED=true for "
        "development, or configure API keys or JWT",
        headers={"WWW-Authenticate": "Bearer"},
    )
