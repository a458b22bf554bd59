"""Agents and their tools: the ``@tool`` decorator, ``Agent`` and the registry."""

from agents.agent import Agent
from agents.context import ToolContext, ToolDeps
from agents.registry import AgentRegistry, load_registry
from agents.tool import Tool, ToolArgumentsError, ToolError, tool

__all__ = [
    "Agent",
    "AgentRegistry",
    "Tool",
    "ToolArgumentsError",
    "ToolContext",
    "ToolDeps",
    "ToolError",
    "load_registry",
    "tool",
]
