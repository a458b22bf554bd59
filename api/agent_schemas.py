"""What `GET /agents` and `GET /agents/{agent_id}` answer: agents, tools, policies.

Shaped as the AgentOS wire format's agent (``tools.tools``, ``model`` as an
object), so Agno's own client parses it; each tool carries its
:class:`~countersign.models.ConfirmationPolicy` as well.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.examples import EXAMPLE_AGENT
from countersign.models import TimeoutAction
from countersign.tool import Tool


class Confirmation(StrEnum):
    """When a tool's calls need a person."""

    ALWAYS = "always"
    CONDITIONAL = "conditional"
    NEVER = "never"


class AgentToolPublic(BaseModel):
    """A tool an agent may call, with its schema and confirmation policy.

    The policy is the tool's :class:`~countersign.models.ConfirmationPolicy`,
    its time-to-live in seconds.
    """

    name: str
    description: str
    parameters: dict[str, Any] = Field(description="JSON schema of the arguments.")
    requires_confirmation: Confirmation
    approver_roles: list[str] = Field(default_factory=list)
    approvals_required: int = 1
    allow_self_approval: bool
    confirmation_ttl_seconds: float = Field(description="Time to decide before the call is denied.")
    on_timeout: TimeoutAction
    allow_edit: bool

    @classmethod
    def of(cls, tool: Tool, default_ttl: timedelta) -> AgentToolPublic:
        """A tool's schema and its policy, resolved with the run's default time-to-live."""
        if callable(tool.requires_confirmation):
            when = Confirmation.CONDITIONAL
        else:
            when = Confirmation.ALWAYS if tool.requires_confirmation else Confirmation.NEVER
        policy = tool.confirmation_policy(default_ttl)
        return cls.model_validate(
            {
                **policy.model_dump(exclude={"ttl"}),
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters_schema,
                "requires_confirmation": when,
                "confirmation_ttl_seconds": policy.ttl.total_seconds(),
            }
        )


class AgentToolsPublic(BaseModel):
    """An agent's tools, as the AgentOS wire format nests them (``tools.tools``)."""

    tools: list[AgentToolPublic]
    tool_call_limit: int | None = Field(None, description="Not limited per run beyond max_turns.")
    tool_choice: str | None = None


class AgentModelPublic(BaseModel):
    """The agent's model, in the AgentOS wire format's two spellings (``id``, ``model``)."""

    id: str
    name: str
    model: str
    provider: str


class AgentPublic(BaseModel):
    """An agent the API serves, shaped as the AgentOS wire format's agent."""

    id: str
    name: str
    description: str
    instructions: list[str]
    model: AgentModelPublic | None = Field(
        None, description="The agent's own model; null when it uses the server's default."
    )
    markdown: bool
    tools: AgentToolsPublic

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_AGENT]})
