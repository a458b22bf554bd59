"""The built-in Data Manager: two sensitive tools, both confirmed by a person."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from countersign.agent import Agent
from countersign.context import ToolContext
from countersign.tool import ToolError, tool


@tool(requires_confirmation=True)
def delete_records(
    ctx: ToolContext,
    table_name: Annotated[str, Field(min_length=1, max_length=64)],
    count: Annotated[int, Field(ge=1, le=100_000)],
) -> str:
    """Delete records from a database table.

    Args:
        table_name: The table to delete from (users, orders or sessions).
        count: How many of the oldest records to delete.
    """
    try:
        return ctx.deps.demo_db.delete_oldest(table_name, count, ctx.idempotency_key)
    except LookupError as err:
        raise ToolError(str(err)) from None


@tool(requires_confirmation=True)
def send_notification(
    ctx: ToolContext,
    recipient: Annotated[str, Field(min_length=1, max_length=200)],
    message: Annotated[str, Field(min_length=1, max_length=2000)],
    channel: Literal["email", "slack", "sms"] = "email",
) -> str:
    """Send a notification to a user or a team.

    Args:
        recipient: Who receives it: a user name, an email address or a team.
        message: The text of the notification.
        channel: How to deliver it.
    """
    return ctx.deps.demo_db.enqueue_notification(recipient, channel, message, ctx.idempotency_key)


agent = Agent(
    id="data_manager",
    name="Data Manager",
    tools=[delete_records, send_notification],
    instructions=["You help users manage data operations"],
    markdown=True,
    description="Deletes records and sends notifications, each after a person confirms it.",
)
