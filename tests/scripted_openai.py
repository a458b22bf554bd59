"""A scripted OpenAI-compatible HTTP server for tests.

It speaks enough of the Responses API (``POST /v1/responses``) and of Chat
Completions (``POST /v1/chat/completions``) for the real ``openai`` client. A
test scripts a conversation by its first user message: the list of replies the
model gives turn after turn. When a script runs out, the model gives a final
answer that quotes every tool result it was sent, so tests can check that the
answer includes what the tools did.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class Call:
    """A tool call the scripted model makes."""

    name: str
    args: dict[str, Any] | str
    call_id: str | None = None

    @property
    def arguments(self) -> str:
        return self.args if isinstance(self.args, str) else json.dumps(self.args)


@dataclass
class Reply:
    """One model turn: text, tool calls, or an HTTP error."""

    text: str | None = None
    calls: list[Call] = field(default_factory=list)
    status: int = 200
    error: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds the model takes to answer: a slow model, not a synchronisation.
    delay: float = 0.0


@dataclass
class Conversation:
    """What a request carried, reduced to what scripts need."""

    first_user_message: str
    turn: int
    tool_outputs: list[str]


_ids = itertools.count(1)


def _reduce_responses(body: dict[str, Any]) -> Conversation:
    items = body.get("input") or []
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    users = [i for i, item in enumerate(items) if item.get("role") == "user"]
    first = items[users[0]]["content"] if users else ""
    last_user = users[-1] if users else -1
    turn = 0
    outputs: list[str] = []
    previous_was_call = False
    for item in items[last_user + 1 :]:
        is_call = item.get("type") == "function_call"
        if (is_call and not previous_was_call) or item.get("role") == "assistant":
            turn += 1
        previous_was_call = is_call
        if item.get("type") == "function_call_output":
            outputs.append(str(item.get("output")))
    return Conversation(str(first), turn, outputs)


def _reduce_chat(body: dict[str, Any]) -> Conversation:
    messages = body.get("messages") or []
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    first = messages[users[0]]["content"] if users else ""
    last_user = users[-1] if users else -1
    after = messages[last_user + 1 :]
    return Conversation(
        str(first),
        sum(1 for m in after if m.get("role") == "assistant"),
        [str(m.get("content")) for m in after if m.get("role") == "tool"],
    )


class ScriptedModel:
    """The scripted model behind the server: scripts, forced errors, a request log."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Reply]] = {}
        self.errors: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.base_url = ""

    def script(self, first_user_message: str, *replies: Reply) -> None:
        """Make the conversation that starts with this message go this way."""
        self.scripts[first_user_message] = list(replies)

    def fail_next(self, status: int, times: int = 1, **headers: str) -> None:
        """Answer the next ``times`` requests with an HTTP error."""
        for _ in range(times):
            self.errors.append(
                Reply(status=status, error=f"scripted HTTP {status}", headers=headers)
            )

    def requests_for(self, first_user_message: str) -> list[dict[str, Any]]:
        """The request bodies of one conversation."""
        out = []
        for body in self.requests:
            reduce = _reduce_chat if "messages" in body else _reduce_responses
            if reduce(body).first_user_message == first_user_message:
                out.append(body)
        return out

    def reply_for(self, conversation: Conversation) -> Reply:
        if self.errors:
            return self.errors.popleft()
        script = self.scripts.get(conversation.first_user_message, [])
        if conversation.turn < len(script):
            return script[conversation.turn]
        return Reply(text="Final answer: " + " | ".join(conversation.tool_outputs))


def _error(reply: Reply) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": reply.error, "type": "scripted", "code": str(reply.status)}},
        status_code=reply.status,
        headers=reply.headers,
    )


def _usage_responses() -> dict[str, Any]:
    return {
        "input_tokens": 11,
        "output_tokens": 7,
        "total_tokens": 18,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    }


def build_app(model: ScriptedModel) -> Starlette:
    async def responses(request: Request) -> JSONResponse:
        body = await request.json()
        model.requests.append(body)
        reply = model.reply_for(_reduce_responses(body))
        await asyncio.sleep(reply.delay)
        if reply.status != 200:
            return _error(reply)
        output: list[dict[str, Any]] = []
        for call in reply.calls:
            n = next(_ids)
            output.append(
                {
                    "type": "function_call",
                    "id": f"fc_{n}",
                    "call_id": call.call_id or f"call_{n}",
                    "name": call.name,
                    "arguments": call.arguments,
                    "status": "completed",
                }
            )
        if reply.text is not None:
            output.append(
                {
                    "type": "message",
                    "id": f"msg_{next(_ids)}",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
                }
            )
        return JSONResponse(
            {
                "id": f"resp_{next(_ids)}",
                "object": "response",
                "created_at": 1_700_000_000,
                "model": body.get("model", "scripted"),
                "status": "completed",
                "output": output,
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "usage": _usage_responses(),
            }
        )

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        model.requests.append(body)
        reply = model.reply_for(_reduce_chat(body))
        await asyncio.sleep(reply.delay)
        if reply.status != 200:
            return _error(reply)
        tool_calls = [
            {
                "id": call.call_id or f"call_{next(_ids)}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in reply.calls
        ]
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return JSONResponse(
            {
                "id": f"chatcmpl-{next(_ids)}",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body.get("model", "scripted"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "tool_calls" if tool_calls else "stop",
                        "message": message,
                    }
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }
        )

    return Starlette(
        routes=[
            Route("/v1/responses", responses, methods=["POST"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ]
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ScriptedServer:
    """Runs the scripted model's app with uvicorn on a free loopback port."""

    def __init__(self, model: ScriptedModel) -> None:
        self.model = model
        self.port = free_port()
        config = uvicorn.Config(
            build_app(model), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None
        model.base_url = f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        # Bind first, so the port accepts connections before start() returns.
        config = self._server.config
        if not config.loaded:
            config.load()
        self._server.lifespan = config.lifespan_class(config)
        sockets = [config.bind_socket()]
        self._task = asyncio.create_task(self._server.serve(sockets=sockets))

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
