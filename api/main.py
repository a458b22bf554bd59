"""The FastAPI application: routers, error handlers and the shared Temporal client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from temporalio.client import Client

from agents import load_registry
from api import errors
from api.deps import AppState
from api.routes import agents, approvals, health, runs
from countersign.settings import Settings, get_settings
from countersign.temporal import connect

logger = logging.getLogger("countersign.api")

DESCRIPTION = """
Durable human approval for AI agents' tool calls, on Temporal.

Start a run with `POST /agents/{agent_id}/runs`; when the agent calls a tool that needs
confirmation, the run answers `PAUSED` with the pending calls. Decide them with
`POST /agents/{agent_id}/runs/{run_id}/continue` (the seed's format) or through the approvals
inbox. Every error is `{"detail": ..., "code": ...}`.
"""


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: AppState = app.state.countersign
    settings = state.settings
    if settings.auth_disabled:
        logger.warning(
            "AUTHENTICATION IS DISABLED (COUNTERSIGN_AUTH_DISABLED=true): any caller may act as "
            "any user. Development only."
        )
    if state.client is None:
        try:
            state.client = await connect(settings)
        except RuntimeError as err:
            # Serve anyway: /health says so, other routes answer 503 and reconnect later.
            logger.warning("Temporal unreachable at %s: %s", settings.temporal_address, err)
    yield
    # Requests still waiting on Temporal answer now rather than hold shutdown up.
    state.waits.cancel_all()


def create_app(settings: Settings | None = None, client: Client | None = None) -> FastAPI:
    """Build the API.

    Args:
        settings: Defaults to the environment's settings.
        client: A connected client (with the pydantic data converter) to share;
            when ``None`` the lifespan connects one with ``countersign.temporal.connect``.

    Returns:
        The application; run it with ``python -m api`` or any ASGI server.
    """
    settings = settings or get_settings()
    app = FastAPI(
        title="Countersign",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=_lifespan,
    )
    app.state.countersign = AppState(
        settings=settings, registry=load_registry(settings.agent_modules), client=client
    )
    errors.install(app)
    app.include_router(health.router)
    app.include_router(agents.router)
    app.include_router(runs.router)
    app.include_router(approvals.router)
    return app
