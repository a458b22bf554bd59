"""A test agent whose tools cover the API's decision paths.

The API tests' worker and app both load it through ``Settings.agent_modules``,
as a deployment adds its own agents.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field

from countersign import Agent, tool

AGENT_ID = "api_ops"


@tool(requires_confirmation=True, allow_edit=True)
def resize_volume(volume: str, size_gb: Annotated[int, Field(ge=1, le=1000)]) -> str:
    """Resize a volume; an approver may change the size.

    Args:
        volume: The volume's name.
        size_gb: The new size in GB (1 to 1000).
    """
    return f"resized {volume} to {size_gb} GB"


@tool(requires_confirmation=True, confirmation_ttl=timedelta(milliseconds=300))
def short_fuse(target: str) -> str:
    """An action whose confirmation must come within 300 ms.

    Args:
        target: What it acts on.
    """
    return f"fused {target}"


@tool(requires_confirmation=True, approvals_required=2)
def wire_money(amount: int) -> str:
    """Send money; two distinct approvers, the requester not among them.

    Args:
        amount: How much.
    """
    return f"wired {amount}"


@tool
def lookup(key: str) -> str:
    """Read a value (never confirmed).

    Args:
        key: What to read.
    """
    return f"value of {key}"


agent = Agent(
    id=AGENT_ID,
    name="API Ops",
    tools=[resize_volume, short_fuse, wire_money, lookup],
    instructions=["You run operations for the API tests."],
    description="Test-only agent for the API's decision paths.",
)
