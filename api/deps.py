"""Dependencies as ``Annotated`` aliases, so route signatures read like sentences.

``CurrentPrincipal`` is the only way a route learns who is calling;
:func:`require` is the one place where permissions are checked against roles
(the security work extends ``PERMISSION_ROLES`` and ``api.auth``, not routes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request, status
from temporalio.client import Client

from agents import Agent, AgentRegistry
from api import auth
from api.errors import ApiError, is_connection_failure
from api.service import PendingWaits
from countersign.models import Principal
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
    """

    settings: Settings
    registry: AgentRegistry
    client: Client | None = None
    waits: PendingWaits = field(default_factory=PendingWaits)
    _connecting: asyncio.Lock = field(default_factory=asyncio.Lock)

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
                    self.client = await connect(self.settings)
                except RuntimeError as err:
                    if not is_connection_failure(err):
                        raise
                    raise ApiError.temporal_unavailable(err) from None
                logger.info("connected to Temporal at %s", self.settings.temporal_address)
            return self.client


def app_state(request: Request) -> AppState:
    """The process-wide state that ``create_app`` attached."""
    state: AppState = request.app.state.countersign
    return state


StateDep = Annotated[AppState, Depends(app_state)]


def _settings(state: StateDep) -> Settings:
    return state.settings


def _registry(state: StateDep) -> AgentRegistry:
    return state.registry


def _waits(state: StateDep) -> PendingWaits:
    return state.waits


async def _client(state: StateDep) -> Client:
    return await state.ensure_client()


SettingsDep = Annotated[Settings, Depends(_settings)]
RegistryDep = Annotated[AgentRegistry, Depends(_registry)]
ClientDep = Annotated[Client, Depends(_client)]
WaitsDep = Annotated[PendingWaits, Depends(_waits)]


async def _principal(request: Request, settings: SettingsDep) -> Principal:
    return await auth.authenticate(request, settings)


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


class Permission(StrEnum):
    """What a route lets its caller do."""

    READ = "read"
    START_RUN = "start_run"
    DECIDE = "decide"


#: Roles that grant each permission (``admin`` grants all). Per-tool approver
#: roles, four eyes and self-approval are checked by the workflow on top.
PERMISSION_ROLES: dict[Permission, tuple[str, ...]] = {
    Permission.READ: ("viewer", "requester", "approver"),
    Permission.START_RUN: ("requester",),
    # The seed's requester confirms their own call through /continue.
    Permission.DECIDE: ("approver", "requester"),
}


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


def get_agent(registry: AgentRegistry, agent_id: str) -> Agent:
    """The agent with this id.

    Raises:
        ApiError: 404 ``unknown_agent``.
    """
    agent = registry.get(agent_id)
    if agent is None:
        raise ApiError(
            status.HTTP_404_NOT_FOUND, "unknown_agent", f"agent {agent_id!r} does not exist"
        )
    return agent


def _agent(agent_id: str, registry: RegistryDep) -> Agent:
    return get_agent(registry, agent_id)


AgentDep = Annotated[Agent, Depends(_agent)]
