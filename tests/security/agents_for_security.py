"""A test agent for the security tests: one tool per confirmation rule.

Every effect goes to the demo database's outbox, addressed to the tool's name,
so a test counts exactly how many times a tool ran.
"""

from __future__ import annotations

from datetime import timedelta

from countersign import Agent, ToolContext, tool

AGENT_ID = "sec_ops"


def _effect(ctx: ToolContext, tool_name: str, what: str) -> str:
    return ctx.deps.demo_db.enqueue_notification(tool_name, "effect", what, ctx.idempotency_key)


@tool(requires_confirmation=True)
def purge(ctx: ToolContext, target: str) -> str:
    """Purge a target; one approval, the requester may confirm it (the default for one approval).

    Args:
        target: What to purge.
    """
    return _effect(ctx, "purge", target)


@tool(requires_confirmation=True, approvals_required=2)
def wire_money(ctx: ToolContext, amount: int) -> str:
    """Send money: two distinct approvers, the requester not among them.

    Args:
        amount: How much.
    """
    return _effect(ctx, "wire_money", str(amount))


@tool(requires_confirmation=True, approver_roles={"dba"})
def drop_table(ctx: ToolContext, name: str) -> str:
    """Drop a table; only a dba decides.

    Args:
        name: The table.
    """
    return _effect(ctx, "drop_table", name)


@tool(requires_confirmation=True, confirmation_ttl=timedelta(milliseconds=400))
def hurry(ctx: ToolContext, target: str) -> str:
    """An action denied unless confirmed within 400 ms.

    Args:
        target: What it acts on.
    """
    return _effect(ctx, "hurry", target)


agent = Agent(
    id=AGENT_ID,
    name="Security Ops",
    tools=[purge, wire_money, drop_table, hurry],
    instructions=["You run operations for the security tests."],
    description="Test-only agent for authorization and decision links.",
)
