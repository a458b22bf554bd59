"""The model request the worker posts is the one the SDK's typed methods would send.

The worker builds each turn's body itself and posts it with the client's
``post``, skipping the SDK's per-turn transform of the whole conversation; this
pins that nothing is lost by it: the SDK sends the very same JSON.
"""

from __future__ import annotations

from typing import Any

import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from activities.llm import chat_request, responses_request
from countersign.data_manager import agent
from countersign.models import ChatMessage, ModelToolCall
from tests.scripted_openai import Reply, ScriptedModel

MESSAGE = "Delete 50 records from users, then tell me when done"

#: A conversation with every kind of message: the user, a call, its result.
CONVERSATION = [
    ChatMessage(role="user", content=MESSAGE),
    ChatMessage(
        role="assistant",
        content=None,
        tool_calls=[
            ModelToolCall(
                tool_call_id="call_1",
                tool_name="delete_records",
                arguments='{"table_name": "users", "count": 50}',
            )
        ],
    ),
    ChatMessage(
        role="tool", tool_call_id="call_1", tool_name="delete_records", content="Deleted 50"
    ),
]


@pytest.mark.parametrize("api", ["responses", "chat"])
async def test_posted_body_is_what_the_typed_method_sends(model: ScriptedModel, api: str) -> None:
    model.script(MESSAGE, Reply(text="done"), Reply(text="done"))
    client = AsyncOpenAI(api_key="test-key", base_url=model.base_url, max_retries=0)
    async with client:
        body: dict[str, Any]
        if api == "responses":
            body = responses_request(agent, "scripted-model", CONVERSATION)
            await client.responses.create(**body)
            await client.post("/responses", body=body, cast_to=Response)
        else:
            body = chat_request(agent, "scripted-model", CONVERSATION)
            await client.chat.completions.create(**body)
            await client.post("/chat/completions", body=body, cast_to=ChatCompletion)
    typed, posted = model.requests_for(MESSAGE)
    assert posted == typed
    assert posted == body
