"""The FastAPI application: routers, error handlers and the shared Temporal client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from temporalio.client import Client

from api import auth, errors, metrics
from api.deps import AppState, rate_limit_address, rate_limit_principal
from api.errors import ApiError
from api.rate_limit import BodySizeLimitMiddleware
from api.routes import agents, approvals, decision_tokens, health, runs
from countersign import load_registry
from countersign.observability import configure_tracing
from countersign.security.decision_tokens import MIN_SECRET_BYTES
from countersign.settings import Settings, get_settings

logger = logging.getLogger("countersign.api")

DESCRIPTION = """
Durable human approval for AI agents' tool calls, on Temporal.

Start a run with `POST /agents/{agent_id}/runs`; when the agent calls a tool that needs
confirmation, the run answers `PAUSED` with the pending calls. Decide them with
`POST /agents/{agent_id}/runs/{run_id}/continue` (the AgentOS wire format) or through the approvals
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
    tracing = configure_tracing(settings, "countersign-api")
    if tracing is not None:
        state.interceptors = tracing.interceptors
    if state.client is None:
        try:
            await state.ensure_client()
        except ApiError as err:
            # Serve anyway: /health says so, other routes answer 503 and reconnect later.
            logger.warning("Temporal unreachable at %s: %s", settings.temporal_address, err)
    yield
    # Requests still waiting on Temporal answer now rather than hold shutdown up.
    state.waits.cancel_all()
    if tracing is not None:
        tracing.shutdown()


def create_app(settings: Settings | None = None, client: Client | None = None) -> FastAPI:
    """Build the API.

    Args:
        settings: Defaults to the environment's settings.
        client: A connected client (with the pydantic data converter) to share;
            when ``None`` the lifespan connects one with ``countersign.temporal.connect``.

    Returns:
        The application; run it with ``python -m api`` or any ASGI server.

    Raises:
        ValueError: When ``COUNTERSIGN_DECISION_TOKEN_SECRET`` is set but too short, or
            development mode would serve a non-loopback host.
    """
    settings = settings or get_settings()
    secret = settings.decision_token_secret
    if secret is not None and len(secret.get_secret_value().encode()) < MIN_SECRET_BYTES:
        # Refuse to start rather than sign links with a guessable key.
        raise ValueError(
            f"COUNTERSIGN_DECISION_TOKEN_SECRET must be at least {MIN_SECRET_BYTES} bytes"
        )
    if problem := auth.dev_mode_problem(settings):
        raise ValueError(problem)
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
    state: AppState = app.state.countersign
    app.add_middleware(metrics.RequestMetricsMiddleware)
    # Bodies are counted before any route (or authentication) reads them.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    # /health stays unlimited for load balancers; every other route is limited per
    # principal and route, the credential-less token route per client address.
    limited = [Depends(rate_limit_principal)]
    app.include_router(health.router)
    # Prometheus scrapes /metrics without credentials, as it does /health.
    app.include_router(
        metrics.metrics_router(metrics.pending_approvals_counter(state.ensure_client))
    )
    app.include_router(agents.router, dependencies=limited)
    app.include_router(runs.router, dependencies=limited)
    app.include_router(approvals.router, dependencies=limited)
    app.include_router(decision_tokens.router, dependencies=[Depends(rate_limit_address)])
    return app
