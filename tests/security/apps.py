"""Tiny FastAPI apps that mount the security pieces the way the API does.

No ``from __future__ import annotations`` here: FastAPI must see the route
annotations, which name locals of ``make_app``, as real objects.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

from api.auth import authenticate, render_http_exception, require_roles
from api.rate_limit import BodySizeLimitMiddleware, RateLimited, RateLimiter, route_key
from countersign.models import Principal
from countersign.settings import Settings


def rate_limit(
    limiter: RateLimiter,
    principal_dependency: Callable[..., Awaitable[Principal]] | Callable[..., Principal],
) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency that limits each principal on each route.

    Args:
        limiter: The process's limiter.
        principal_dependency: The API's dependency that yields the principal.

    Returns:
        A dependency to put in a router's or route's ``dependencies``.
    """

    async def enforce(
        request: Request,
        principal: Principal = Depends(principal_dependency),  # noqa: B008
    ) -> None:
        retry_after = limiter.hit_principal(principal, route_key(request))
        if retry_after is not None:
            raise RateLimited(retry_after)

    return enforce


class Echo(BaseModel):
    """What the test routes answer."""

    principal: Principal
    size: int = 0


def make_app(settings: Settings, limiter: RateLimiter | None = None) -> FastAPI:
    """An app with one read route, one approver route and one upload route."""

    async def current_principal(request: Request) -> Principal:
        return await authenticate(request, settings)

    CurrentPrincipal = Annotated[Principal, Depends(current_principal)]  # noqa: N806
    dependencies = [Depends(rate_limit(limiter, current_principal))] if limiter else []
    router = APIRouter(dependencies=dependencies)

    @router.get("/whoami")
    async def whoami(principal: CurrentPrincipal) -> Echo:
        return Echo(principal=principal)

    @router.get("/items/{item_id}")
    async def item(item_id: str, principal: CurrentPrincipal) -> Echo:
        return Echo(principal=principal)

    @router.post("/decide")
    async def decide(principal: CurrentPrincipal) -> Echo:
        return Echo(principal=require_roles(principal, "approver"))

    @router.post("/upload")
    async def upload(request: Request, principal: CurrentPrincipal) -> Echo:
        return Echo(principal=principal, size=len(await request.body()))

    app = FastAPI()
    app.include_router(router)
    app.add_exception_handler(HTTPException, render_http_exception)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app


def client_for(app: FastAPI, **headers: str) -> httpx.AsyncClient:
    """An HTTP client that talks to ``app`` in process through ASGI."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
    )
