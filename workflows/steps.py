"""The run's activities as the workflow calls them, and the messages they add.

``model_turn`` and ``execute_tool`` schedule the activities with the run's
options (timeouts, heartbeats, retries, idempotency key); the message helpers
turn a model turn and a call's result into the conversation the model reads
next. Workflow code: called from ``AgentRunWorkflow`` only.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from countersign.models import (
        EXECUTE_TOOL_ACTIVITY,
        MODEL_TURN_ACTIVITY,
        CallRecord,
        CallState,
        ChatMessage,
        ModelToolCall,
        ModelTurn,
        ModelTurnInput,
        RunInput,
        RunState,
        ToolInvocation,
        ToolResult,
    )
    from workflows.webhook_queue import error_message

TOOL_MAX_ATTEMPTS = 3


async def model_turn(run: RunInput, state: RunState) -> ModelTurn:
    """Ask the model for turn ``state.turns``; its usage and model go into ``state``."""
    options = run.options
    result: ModelTurn = await workflow.execute_activity(
        MODEL_TURN_ACTIVITY,
        ModelTurnInput(
            run_id=run.run_id,
            agent_id=run.agent_id,
            turn=state.turns,
            messages=state.messages,
            default_confirmation_ttl=options.default_confirmation_ttl,
        ),
        result_type=ModelTurn,
        start_to_close_timeout=options.llm_timeout,
        # The activity heartbeats while it waits on the model, so a turn cut by
        # a dead worker is retried within seconds, not after llm_timeout.
        # No patch: replay does not compare an activity's timeouts.
        heartbeat_timeout=options.llm_heartbeat_timeout,
        retry_policy=RetryPolicy(
            initial_interval=options.llm_retry_initial_interval,
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=60),
            maximum_attempts=options.llm_max_attempts,
        ),
        summary=f"model turn {state.turns}",
    )
    state.usage = state.usage.plus(result.usage)
    state.model = result.model
    state.demo_model = result.demo
    return result


async def execute_tool(run: RunInput, record: CallRecord) -> None:
    """Run one call's tool, once in effect (idempotency key), and record its outcome."""
    options = run.options
    record.state = CallState.EXECUTING
    try:
        result: ToolResult = await workflow.execute_activity(
            EXECUTE_TOOL_ACTIVITY,
            ToolInvocation(
                run_id=run.run_id,
                agent_id=run.agent_id,
                tool_call_id=record.tool_call_id,
                tool_name=record.tool_name,
                tool_args=record.tool_args,
                idempotency_key=f"{run.run_id}:{record.tool_call_id}",
                output_limit=options.tool_output_limit,
            ),
            result_type=ToolResult,
            start_to_close_timeout=options.tool_timeout,
            heartbeat_timeout=options.tool_heartbeat_timeout,
            retry_policy=RetryPolicy(maximum_attempts=TOOL_MAX_ATTEMPTS),
            summary=f"{record.tool_name} {record.tool_call_id}",
        )
    except ActivityError as err:
        record.state = CallState.FAILED
        record.result = f"error: {record.tool_name} failed: {error_message(err)}"
    else:
        record.state = CallState.EXECUTED if result.ok else CallState.FAILED
        record.result = result.output if result.ok else f"error: {result.output}"
        record.result_truncated = result.truncated


def assistant_message(turn: ModelTurn) -> ChatMessage:
    """The model's turn as the conversation keeps it, with the ids the model gave."""
    return ChatMessage(
        role="assistant",
        content=turn.content,
        tool_calls=[
            ModelToolCall(
                tool_call_id=c.tool_call_id, tool_name=c.tool_name, arguments=c.raw_arguments
            )
            for c in turn.calls
        ],
    )


def tool_message(record: CallRecord) -> ChatMessage:
    """A call's result for the model, under the id the model gave the call."""
    return ChatMessage(
        role="tool",
        tool_call_id=record.model_call_id or record.tool_call_id,
        tool_name=record.tool_name,
        content=record.result or "",
    )
