"""Countersign: durable human approval for AI agents' tool calls, on Temporal.

The authoring API lives here, so an agent module needs only this package::

    from countersign import Agent, ToolContext, tool

    @tool(requires_confirmation=True)
    def delete_records(ctx: ToolContext, table_name: str, count: int) -> str:
        ...

    agent = Agent(id="data_manager", tools=[delete_records], instructions="...")

The rest of the package is the shared core that the workflow, the activities,
the worker and the API import: typed messages (``countersign.models``),
settings, security and the Temporal connection. It holds no programs: the CLI
lives in ``cli/`` and the development stack in ``devstack/``.
"""

from countersign.agent import Agent
from countersign.context import ToolContext, ToolDeps
from countersign.models import ConfirmationPolicy, TimeoutAction
from countersign.registry import AgentRegistry, load_registry
from countersign.tool import Tool, ToolArgumentsError, ToolError, tool

__all__ = [
    "Agent",
    "AgentRegistry",
    "ConfirmationPolicy",
    "TimeoutAction",
    "Tool",
    "ToolArgumentsError",
    "ToolContext",
    "ToolDeps",
    "ToolError",
    "load_registry",
    "tool",
]
