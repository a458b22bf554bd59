"""``Agent``: a model, instructions and tools under a URL-safe id."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from countersign.tool import Tool

_AGENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Agent:
    """An agent the API serves and the worker runs.

    Attributes:
        id: URL-safe identifier used in routes (``/agents/{id}/runs``).
        name: Human-readable name.
        tools: Tools the model may call.
        instructions: System prompt lines.
        model: Model name for this agent; ``OPENAI_MODEL`` when ``None``.
        markdown: Ask the model to format answers in Markdown.
        description: What the agent is for, shown by ``GET /agents``.
    """

    id: str
    name: str
    tools: list[Tool] = field(default_factory=list)
    instructions: list[str] = field(default_factory=list)
    model: str | None = None
    markdown: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if not _AGENT_ID.match(self.id):
            raise ValueError(f"agent id {self.id!r} must match {_AGENT_ID.pattern}")
        names = [t.name for t in self.tools]
        if len(names) != len(set(names)):
            raise ValueError(f"agent {self.id}: tool names must be unique, got {names}")

    def get_tool(self, name: str) -> Tool | None:
        """The tool called ``name``, or ``None``."""
        return next((t for t in self.tools if t.name == name), None)

    @property
    def system_prompt(self) -> str:
        """Instructions as the model receives them."""
        lines = list(self.instructions)
        if self.markdown:
            lines.append("Use markdown to format your answers.")
        return "\n".join(lines)
