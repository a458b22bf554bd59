"""``/agents``: the agents the API serves, with their tools and policies."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from api.agent_schemas import AgentModelPublic, AgentPublic, AgentToolPublic, AgentToolsPublic
from api.deps import AgentDep, Reader, RegistryDep, SettingsDep
from api.errors import responses
from countersign import Agent

router = APIRouter(prefix="/agents", tags=["agents"])


def agent_public(agent: Agent, default_ttl: timedelta) -> AgentPublic:
    """An agent as the API shows it: the AgentOS wire format's shape, with our policies.

    ``tools`` is an object whose ``tools`` list holds each tool's schema and
    confirmation policy, and ``model`` an object, as Agno's own client parses them.
    """
    model = (
        AgentModelPublic(id=agent.model, name=agent.model, model=agent.model, provider="openai")
        if agent.model
        else None
    )
    return AgentPublic(
        id=agent.id,
        name=agent.name,
        description=agent.description,
        instructions=list(agent.instructions),
        model=model,
        markdown=agent.markdown,
        tools=AgentToolsPublic(tools=[AgentToolPublic.of(t, default_ttl) for t in agent.tools]),
    )


@router.get(
    "",
    summary="List the agents",
    response_model=list[AgentPublic],
    responses=responses(401),
)
async def list_agents(registry: RegistryDep, settings: SettingsDep, _: Reader) -> list[AgentPublic]:
    """Every agent the API serves, with its tools."""
    return [agent_public(a, settings.confirmation_ttl) for a in registry]


@router.get(
    "/{agent_id}",
    summary="One agent, its tools' schemas and confirmation policies",
    response_model=AgentPublic,
    responses=responses(401, 404),
)
async def read_agent(agent: AgentDep, settings: SettingsDep, _: Reader) -> AgentPublic:
    """The agent, each tool with its JSON schema and confirmation policy."""
    return agent_public(agent, settings.confirmation_ttl)
