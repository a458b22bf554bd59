"""The agents the worker runs and the API serves: one registry, shared."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator

from countersign.agent import Agent


class AgentRegistry:
    """Agents by id."""

    def __init__(self, agents: Iterable[Agent] = ()) -> None:
        self._agents: dict[str, Agent] = {}
        for agent in agents:
            self.register(agent)

    def register(self, agent: Agent) -> None:
        """Add an agent.

        Raises:
            ValueError: Another agent has the same id.
        """
        if agent.id in self._agents:
            raise ValueError(f"agent id {agent.id!r} is registered twice")
        self._agents[agent.id] = agent

    def get(self, agent_id: str) -> Agent | None:
        """The agent with this id, or ``None``."""
        return self._agents.get(agent_id)

    def __iter__(self) -> Iterator[Agent]:
        return iter(self._agents.values())

    def __len__(self) -> int:
        return len(self._agents)


def _agents_of(module_name: str) -> list[Agent]:
    module = importlib.import_module(module_name)
    found = getattr(module, "AGENTS", None)
    if found is None and isinstance(getattr(module, "agent", None), Agent):
        found = [module.agent]
    if not found:
        raise ValueError(f"module {module_name} defines neither AGENTS nor agent")
    return list(found)


def load_registry(extra_modules: Iterable[str] = ()) -> AgentRegistry:
    """The built-in agents plus those of ``extra_modules``.

    Args:
        extra_modules: Importable modules that each define ``agent`` (one
            :class:`Agent`) or ``AGENTS`` (a list), from
            ``COUNTERSIGN_AGENT_MODULES``.
    """
    modules = ["countersign.data_manager", *extra_modules]
    return AgentRegistry(agent for name in modules for agent in _agents_of(name))
