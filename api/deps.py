"""Dependencies as ``Annotated`` aliases, so route signatures read like sentences.

``CurrentPrincipal`` is the only way a route learns who is calling;
:func:`require` checks a route's permission against roles, and
:mod:`api.policy` holds every rule about who may do what with a run. Rate
limits hang off the principal here too: per principal and route on every
authenticated router, per client address for failed logins and for the
credential-less decision-token route.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, status
from temporalio.client import Client, Interceptor

from api import auth
from api.errors import ApiError
from api.policy import PERMISSION_ROLES, Permission
from api.rate_limit import RateLimited, RateLimiter, route_key
from api.shutdown import PendingWaits
from countersign import Agent, AgentRegistry
from countersign.client import is_connection_failure
from countersign.models import ErrorCode, Principal
from countersign.observability import with_interceptors
from countersign.settings import Settings
from countersign.temporal import connect

logger = logging.getLogger("countersign.api")


@dataclass
class AppState:
    """What one API process shares between requests.

    Attributes:
        settings: The process's settings.
        registry: The agents served (the worker's registry).
        client: The shared Temporal client; ``None`` until Temporal is reached.
        waits: Temporal waits in flight, cancelled on shutdown.
        limiter: Requests per principal (or client address) and route.
        auth_failures: Failed authentications per client address.
        interceptors: Client interceptors (tracing) for the connection made here.
    """

    settings: Settings
    registry: AgentRegistry
    client: Client | None = None
    interceptors: Sequence[Interceptor] = ()
    waits: PendingWaits = field(default_factory=PendingWaits)
    limiter: RateLimiter = field(init=False)
    auth_failures: RateLimiter = field(init=False)
    _connecting: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(
            self.settings.rate_limit_per_minute, role_budgets=self.settings.rate_limit_roles
        )
        # The same budget for failed logins: guessing a 256-bit key is hopeless
        # anyway, this keeps a flood of bad credentials from costing much.
        self.auth_failures = RateLimiter(self.settings.rate_limit_per_minute)

    async def ensure_client(self) -> Client:
        """The shared client, connecting now if Temporal was unreachable before.

        Raises:
            ApiError: 503 ``temporal_unavailable``.
        """
        if self.client is not None:
            return self.client
        async with self._connecting:
            if self.client is None:
                try:
                    self.client = with_interceptors(await connect(self.settings), self.interceptors)
                except RuntimeError as err:
                    if not is_connection_failure(err):
                        raise
                    raise ApiError.temporal_unavailable(err) from None
                logger.info("connected to Temporal at %s", self.settings.temporal_address)
            return self.client


# Dependencies that do no I/O are async anyway: FastAPI runs sync ones in a
# thread pool, a hop per dependency per request for nothing.


async def app_state(request: Request) -> AppState:
    """The process-wide state that ``create_app`` attached."""
    state: AppState = request.app.state.countersign
    return state


StateDep = Annotated[AppState, Depends(app_state)]


async def _settings(state: StateDep) -> Settings:
    return state.settings


async def _registry(state: StateDep) -> AgentRegistry:
    return state.registry


async def _waits(state: StateDep) -> PendingWaits:
    return state.waits


async def _client(state: StateDep) -> Client:
    return await state.ensure_client()


SettingsDep = Annotated[Settings, Depends(_settings)]
RegistryDep = Annotated[AgentRegistry, Depends(_registry)]
ClientDep = Annotated[Client, Depends(_client)]
WaitsDep = Annotated[PendingWaits, Depends(_waits)]


AUTH_FAILURES = "authentication failures"


def client_address(request: Request) -> str:
    """The peer's address (behind a proxy: the proxy's, unless uvicorn is told to trust it)."""
    return request.client.host if request.client else "unknown"


async def _principal(request: Request, state: StateDep) -> Principal:
    try:
        return await auth.authenticate(request, state.settings)
    except auth.AuthError as err:
        # Credentials first, the address only for failures: behind a proxy many
        # callers share one address, and their junk must never lock out a
        # valid credential.
        if err.status_code == status.HTTP_401_UNAUTHORIZED:
            retry_after = state.auth_failures.hit(client_address(request), AUTH_FAILURES)
            if retry_after is not None:
                raise RateLimited(retry_after) from None
        raise


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


async def rate_limit_principal(
    request: Request, state: StateDep, principal: CurrentPrincipal
) -> None:
    """Limit each principal on each route (429 ``rate_limited`` with ``Retry-After``)."""
    retry_after = state.limiter.hit_principal(principal, route_key(request))
    if retry_after is not None:
        raise RateLimited(retry_after)


async def rate_limit_address(request: Request, state: StateDep) -> None:
    """Limit each client address on a route that takes no credentials."""
    retry_after = state.limiter.hit("address:" + client_address(request), route_key(request))
    if retry_after is not None:
        raise RateLimited(retry_after)


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets the request through only with ``permission``.

    Returns:
        A dependency returning the principal; it raises 403 ``forbidden``.
    """

    async def check(principal: CurrentPrincipal) -> Principal:
        return auth.require_roles(principal, *PERMISSION_ROLES[permission])

    return check


Reader = Annotated[Principal, Depends(require(Permission.READ))]
Requester = Annotated[Principal, Depends(require(Permission.START_RUN))]
Approver = Annotated[Principal, Depends(require(Permission.DECIDE))]
TokenIssuer = Annotated[Principal, Depends(require(Permission.MINT_TOKEN))]


def get_agent(registry: AgentRegistry, agent_id: str) -> Agent:
    """The agent with this id.

    Raises:
        ApiError: 404 ``unknown_agent``.
    """
    agent = registry.get(agent_id)
    if agent is None:
        raise ApiError(
            status.HTTP_404_NOT_FOUND, ErrorCode.UNKNOWN_AGENT, f"agent {agent_id!r} does not exist"
        )
    return agent


async def _agent(agent_id: str, registry: RegistryDep) -> Agent:
    return get_agent(registry, agent_id)


AgentDep = Annotated[Agent, Depends(_agent)]
