"""One tool call as an activity, with its idempotency key."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from countersign import AgentRegistry, ToolArgumentsError, ToolContext, ToolDeps, ToolError
from countersign.models import EXECUTE_TOOL_ACTIVITY, ToolInvocation, ToolResult

logger = logging.getLogger(__name__)


def cap_output(output: str, limit: int) -> ToolResult:
    """A successful result, cut to ``limit`` characters with the cut recorded."""
    if len(output) <= limit:
        return ToolResult(ok=True, output=output, original_length=len(output))
    note = f"\n[output truncated: {len(output)} characters, limit {limit}]"
    return ToolResult(
        ok=True,
        output=output[: max(limit - len(note), 0)] + note,
        truncated=True,
        original_length=len(output),
    )


async def _heartbeat_until_done(interval: timedelta) -> None:
    # Lets the server notice a crashed worker within the heartbeat timeout
    # instead of the whole start-to-close timeout.
    while True:
        activity.heartbeat()
        await asyncio.sleep(interval.total_seconds())


class ToolActivities:
    """The ``execute_tool`` activity, bound to the agents and the tool resources."""

    def __init__(self, registry: AgentRegistry, deps: ToolDeps) -> None:
        self._registry = registry
        self._deps = deps

    @activity.defn(name=EXECUTE_TOOL_ACTIVITY)
    async def execute_tool(self, invocation: ToolInvocation) -> ToolResult:
        """Run one approved (or ungated) tool call.

        A :class:`ToolError` or arguments that fail the schema become a failed
        result the model reads; any other exception is retried by Temporal, which
        is safe because the tool receives the same idempotency key each attempt.
        """
        agent = self._registry.get(invocation.agent_id)
        tool = agent.get_tool(invocation.tool_name) if agent else None
        if tool is None:
            raise ApplicationError(
                f"no tool {invocation.tool_name!r} for agent {invocation.agent_id!r}"
                " on this worker",
                type="UnknownTool",
                non_retryable=True,
            )
        ctx = ToolContext(
            run_id=invocation.run_id,
            agent_id=invocation.agent_id,
            tool_call_id=invocation.tool_call_id,
            idempotency_key=invocation.idempotency_key,
            deps=self._deps,
        )
        info = activity.info()
        interval = (info.heartbeat_timeout or timedelta(seconds=30)) / 3
        heartbeat = asyncio.create_task(_heartbeat_until_done(interval))
        try:
            # Validated again: edited arguments arrive here without having been
            # through the model turn's check.
            args = tool.validate_args(invocation.tool_args)
            output = await tool.invoke(args, ctx)
        except (ToolError, ToolArgumentsError) as err:
            logger.info("tool %s failed for %s: %s", tool.name, invocation.idempotency_key, err)
            return ToolResult(ok=False, output=str(err), original_length=len(str(err)))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        logger.info(
            "tool %s executed for %s",
            tool.name,
            invocation.idempotency_key,
            extra={"tool_call_id": invocation.tool_call_id},
        )
        return cap_output(output, invocation.output_limit)
