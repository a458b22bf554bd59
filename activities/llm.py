"""One model turn as an activity, through the official ``openai`` client.

The Responses API is the default; Chat Completions serves OpenAI-compatible
servers that lack it (``COUNTERSIGN_OPENAI_API=chat``). The client does not
retry (``max_retries=0``): Temporal does, with the workflow's retry policy, and
this module tells it which failures are worth retrying.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from pydantic import JsonValue
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.demo_model import DEMO_MODEL_NAME, demo_turn
from activities.raw_turn import RawTurn
from countersign import Agent, AgentRegistry, ToolArgumentsError
from countersign.models import (
    MODEL_TURN_ACTIVITY,
    ChatMessage,
    ModelToolCall,
    ModelTurn,
    ModelTurnInput,
    ProposedCall,
    Usage,
)
from countersign.settings import Settings

logger = logging.getLogger(__name__)

_RETRYABLE_STATUS = {408, 409, 429}
T = TypeVar("T")


async def heartbeating(call: Awaitable[T]) -> T:
    """Await ``call`` while heartbeating, so a dead worker is noticed within seconds.

    Without heartbeats a turn cut by a crash waits out its whole start-to-close
    timeout before Temporal retries it. Beats three times per heartbeat timeout
    (the SDK throttles what it sends); none when the workflow set no timeout.
    """
    timeout = activity.info().heartbeat_timeout
    if not timeout:
        return await call

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(timeout.total_seconds() / 3)

    beating = asyncio.create_task(beat())
    try:
        return await call
    finally:
        beating.cancel()


def _responses_input(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.tool_call_id,
                    "output": message.content or "",
                }
            )
            continue
        if message.content:
            items.append({"role": message.role, "content": message.content})
        items.extend(
            {
                "type": "function_call",
                "call_id": call.tool_call_id,
                "name": call.tool_name,
                "arguments": call.arguments,
            }
            for call in message.tool_calls
        )
    return items


def _chat_messages(agent: Agent, messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if agent.system_prompt:
        out.append({"role": "system", "content": agent.system_prompt})
    for message in messages:
        if message.role == "tool":
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": message.tool_call_id,
                    "content": message.content or "",
                }
            )
        elif message.role == "assistant" and message.tool_calls:
            out.append(
                {
                    "role": "assistant",
                    "content": message.content,
                    "tool_calls": [
                        {
                            "id": call.tool_call_id,
                            "type": "function",
                            "function": {"name": call.tool_name, "arguments": call.arguments},
                        }
                        for call in message.tool_calls
                    ],
                }
            )
        else:
            out.append({"role": message.role, "content": message.content or ""})
    return out


def responses_request(agent: Agent, model: str, messages: list[ChatMessage]) -> dict[str, Any]:
    """The Responses API request body for one turn, as ``responses.create`` would send it."""
    return {
        "model": model,
        "instructions": agent.system_prompt or None,
        "input": _responses_input(messages),
        "tools": [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters_schema,
                "strict": False,
            }
            for t in agent.tools
        ],
    }


def chat_request(agent: Agent, model: str, messages: list[ChatMessage]) -> dict[str, Any]:
    """The Chat Completions request body for one turn, as ``chat.completions.create`` would."""
    return {
        "model": model,
        "messages": _chat_messages(agent, messages),
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters_schema,
                },
            }
            for t in agent.tools
        ],
    }


def _classify(err: openai.OpenAIError) -> ApplicationError:
    """Turn a client error into one Temporal retries, or one it does not."""
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        retryable = status in _RETRYABLE_STATUS or status >= 500
        body = err.message
        if isinstance(err.body, dict) and isinstance(err.body.get("message"), str):
            # The server's own words, without the client's "Error code: 401 - {...}" wrapper.
            body = err.body["message"]
        retry_after = err.response.headers.get("retry-after")
        delay = None
        if retryable and retry_after and retry_after.isdigit():
            delay = timedelta(seconds=min(int(retry_after), 300))
        return ApplicationError(
            f"model request failed with HTTP {status}: {body}",
            type="ModelUnavailable" if retryable else "ModelRequestRejected",
            non_retryable=not retryable,
            next_retry_delay=delay,
        )
    if isinstance(err, openai.APITimeoutError | openai.APIConnectionError):
        return ApplicationError(f"model unreachable: {err}", type="ModelUnavailable")
    return ApplicationError(f"model call failed: {err}", type="ModelError", non_retryable=True)


class ModelActivities:
    """The ``model_turn`` activity, bound to the agents and the model settings."""

    def __init__(
        self, registry: AgentRegistry, settings: Settings, client: AsyncOpenAI | None = None
    ) -> None:
        self._registry = registry
        self._settings = settings
        self._client = client
        if settings.uses_demo_model:
            logger.warning(
                "Model: the OFFLINE DEMO MODEL answers every turn (no OPENAI_API_KEY set, or "
                "COUNTERSIGN_MODEL=demo). It understands a few requests and is not an LLM."
            )
        else:
            logger.info(
                "Model: %s through the %s API at %s",
                settings.openai_model,
                settings.openai_api,
                settings.openai_base_url or "api.openai.com",
            )

    async def aclose(self) -> None:
        """Close the model client's connections (the worker calls it when it stops)."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _openai(self) -> AsyncOpenAI:
        if self._client is None:
            key = self._settings.openai_api_key
            self._client = AsyncOpenAI(
                api_key=key.get_secret_value() if key else None,
                base_url=self._settings.openai_base_url,
                max_retries=0,
                timeout=self._settings.llm_timeout.total_seconds(),
            )
        return self._client

    @activity.defn(name=MODEL_TURN_ACTIVITY)
    async def model_turn(self, turn: ModelTurnInput) -> ModelTurn:
        """Ask the model for its next step and check the tool calls it makes.

        Raises:
            ApplicationError: Non-retryable for requests the model server
                refused (400, 401, 403, 404) or an unknown agent; retryable for
                rate limits, server errors and timeouts.
        """
        agent = self._registry.get(turn.agent_id)
        if agent is None:
            raise ApplicationError(
                f"no agent {turn.agent_id!r} on this worker",
                type="UnknownAgent",
                non_retryable=True,
            )
        if self._settings.uses_demo_model:
            raw = demo_turn(agent, turn)
            demo = True
        else:
            try:
                raw = await heartbeating(self._call_openai(agent, turn.messages))
            except openai.OpenAIError as err:
                raise _classify(err) from err
            demo = False
        return ModelTurn(
            content=raw.content,
            calls=[self._propose(agent, call, turn) for call in raw.calls],
            usage=raw.usage,
            model=raw.model,
            demo=demo,
        )

    async def _call_openai(self, agent: Agent, messages: list[ChatMessage]) -> RawTurn:
        model = agent.model or self._settings.openai_model
        client = self._openai()
        # Posted through the client's documented ``post`` rather than
        # ``responses.create``/``chat.completions.create``: those walk the whole
        # request against the SDK's TypedDicts on every turn (13 % of the
        # worker's CPU under load, growing with the conversation), and these
        # bodies are plain JSON built from our own validated models. Same
        # client, transport, errors and typed response.
        if self._settings.openai_api == "responses":
            response = await client.post(
                "/responses", body=responses_request(agent, model, messages), cast_to=Response
            )
            calls = [
                ModelToolCall(
                    tool_call_id=item.call_id, tool_name=item.name, arguments=item.arguments
                )
                for item in response.output
                if item.type == "function_call"
            ]
            usage = (
                Usage(
                    input_tokens=response.usage.input_tokens,
                    output_tokens=response.usage.output_tokens,
                    total_tokens=response.usage.total_tokens,
                )
                if response.usage
                else Usage()
            )
            return RawTurn(response.output_text or None, calls, usage, response.model)

        completion = await client.post(
            "/chat/completions", body=chat_request(agent, model, messages), cast_to=ChatCompletion
        )
        if not completion.choices:
            raise ApplicationError(
                "model returned no choices", type="ModelError", non_retryable=True
            )
        message = completion.choices[0].message
        calls = [
            ModelToolCall(
                tool_call_id=c.id, tool_name=c.function.name, arguments=c.function.arguments
            )
            for c in message.tool_calls or []
            if c.type == "function"
        ]
        usage = (
            Usage(
                input_tokens=completion.usage.prompt_tokens,
                output_tokens=completion.usage.completion_tokens,
                total_tokens=completion.usage.total_tokens,
            )
            if completion.usage
            else Usage()
        )
        return RawTurn(message.content, calls, usage, completion.model)

    def _propose(self, agent: Agent, call: ModelToolCall, turn: ModelTurnInput) -> ProposedCall:
        """Check one call against its tool: the schema first, then the policy."""
        proposed = ProposedCall(
            tool_call_id=call.tool_call_id, tool_name=call.tool_name, raw_arguments=call.arguments
        )
        tool = agent.get_tool(call.tool_name)
        if tool is None:
            known = ", ".join(t.name for t in agent.tools)
            proposed.arguments_error = f"unknown tool {call.tool_name!r}; tools: {known}"
            return proposed
        try:
            parsed: JsonValue = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as err:
            proposed.arguments_error = f"arguments of {tool.name} are not valid JSON: {err}"
            return proposed
        if not isinstance(parsed, dict):
            proposed.arguments_error = f"arguments of {tool.name} must be a JSON object"
            return proposed
        proposed.tool_args = parsed
        try:
            proposed.tool_args = tool.validate_args(parsed)
        except ToolArgumentsError as err:
            proposed.arguments_error = str(err)
            return proposed
        if tool.needs_confirmation(proposed.tool_args):
            proposed.confirmation = tool.confirmation_policy(turn.default_confirmation_ttl)
        return proposed


__all__ = ["DEMO_MODEL_NAME", "ModelActivities"]
