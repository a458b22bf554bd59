"""A test-only agent whose tools cover every confirmation policy the workflow knows.

The worker loads it through ``COUNTERSIGN_AGENT_MODULES=tests.agents_for_tests``
(or ``Settings.agent_modules``), exactly as a deployment adds its own agents.
Every effect goes through the demo database's ledger, so tests count real,
idempotent effects with ``DemoDatabase.effect_count``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from countersign import Agent, ToolContext, ToolError, tool
from countersign.data_manager import delete_records, send_notification

AGENT_ID = "test_ops"

Table = Annotated[str, Field(min_length=1, max_length=64)]
Count = Annotated[int, Field(ge=1, le=100_000)]

BIG_REPORT_CHARS = 20_000
BULK_THRESHOLD = 100


def release_file(demo_db_path: Path) -> Path:
    """The file whose appearance lets ``blocking_delete`` return."""
    return demo_db_path.with_name(demo_db_path.name + ".release")


def _delete(ctx: ToolContext, table_name: str, count: int) -> str:
    try:
        return ctx.deps.demo_db.delete_oldest(table_name, count, ctx.idempotency_key)
    except LookupError as err:
        raise ToolError(str(err)) from None


@tool
def count_rows(ctx: ToolContext, table_name: Table) -> str:
    """Count the rows of a table (read-only, never confirmed).

    Args:
        table_name: The table to count.
    """
    try:
        return f"{table_name} has {ctx.deps.demo_db.count(table_name)} rows"
    except LookupError as err:
        raise ToolError(f"no table named {table_name!r}") from err


@tool(requires_confirmation=True, confirmation_ttl=timedelta(seconds=1))
def quick_delete(ctx: ToolContext, table_name: Table, count: Count) -> str:
    """Delete records, but only if someone confirms within a second.

    Args:
        table_name: The table to delete from.
        count: How many of the oldest records to delete.
    """
    return _delete(ctx, table_name, count)


@tool(
    requires_confirmation=True,
    confirmation_ttl=timedelta(seconds=1),
    on_timeout="cancel_run",
)
def purge_or_cancel(ctx: ToolContext, table_name: Table, count: Count) -> str:
    """Delete records; an unconfirmed request cancels the whole run after a second.

    Args:
        table_name: The table to delete from.
        count: How many of the oldest records to delete.
    """
    return _delete(ctx, table_name, count)


@tool(requires_confirmation=True, confirmation_ttl=timedelta(days=7))
def weekly_delete(ctx: ToolContext, table_name: Table, count: Count) -> str:
    """Delete records; the confirmation may take up to a week.

    Args:
        table_name: The table to delete from.
        count: How many of the oldest records to delete.
    """
    return _delete(ctx, table_name, count)


def _is_bulk(args: Mapping[str, Any]) -> bool:
    return int(args["count"]) > BULK_THRESHOLD


@tool(requires_confirmation=_is_bulk)
def bulk_delete(ctx: ToolContext, table_name: Table, count: Count) -> str:
    """Delete records; only more than 100 at once needs a confirmation.

    Args:
        table_name: The table to delete from.
        count: How many of the oldest records to delete.
    """
    return _delete(ctx, table_name, count)


@tool(requires_confirmation=True, approvals_required=2)
def four_eyes_delete(ctx: ToolContext, table_name: Table, count: Count) -> str:
    """Delete records after two distinct approvers agree.

    Args:
        table_name: The table to delete from.
        count: How many of the oldest records to delete.
    """
    return _delete(ctx, table_name, count)


@tool(requires_confirmation=True, approver_roles={"dba"})
def dba_delete(ctx: ToolContext, table_name: Table, count: Count) -> str:
    """Delete records after someone with the ``dba`` role approves.

    Args:
        table_name: The table to delete from.
        count: How many of the oldest records to delete.
    """
    return _delete(ctx, table_name, count)


@tool(requires_confirmation=True)
async def blocking_delete(ctx: ToolContext, table_name: Table, count: Count) -> str:
    """Delete records, then hold the activity open until the release file appears.

    The effect is made (once per idempotency key) before the wait, so a test can
    kill the worker at a known point: effect made, activity not yet finished.

    Args:
        table_name: The table to delete from.
        count: How many of the oldest records to delete.
    """
    result = await asyncio.to_thread(_delete, ctx, table_name, count)
    release = release_file(ctx.deps.demo_db.path)
    # The file comes from the test process, so there is no event to await; the
    # activity heartbeats meanwhile, so a dead worker is noticed quickly.
    while not release.exists():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return result


@tool
def big_report() -> str:
    """Produce a report far longer than any tool output limit."""
    return "row " * (BIG_REPORT_CHARS // 4)


@tool
def broken_tool(reason: Annotated[str, Field(max_length=200)]) -> str:
    """Always fail with a ToolError, which must not be retried.

    Args:
        reason: What the failure says.
    """
    raise ToolError(f"broken_tool failed: {reason}")


agent = Agent(
    id=AGENT_ID,
    name="Test Ops",
    tools=[
        delete_records,
        send_notification,
        count_rows,
        quick_delete,
        purge_or_cancel,
        weekly_delete,
        bulk_delete,
        four_eyes_delete,
        dba_delete,
        blocking_delete,
        big_report,
        broken_tool,
    ],
    instructions=["You run test operations."],
    description="Test-only agent covering every confirmation policy.",
)

AGENTS = [agent]
