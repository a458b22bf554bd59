"""Sessions: a new run carries the conversation of the session's earlier completed runs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client

from tests.api.conftest import Api, api_for, api_settings, assert_error, eventually
from tests.conftest import RunningWorker
from tests.scripted_openai import Reply, ScriptedModel


async def complete_run(api: Api, model: ScriptedModel, message: str, session: str) -> str:
    """Run ``message`` to completion in ``session``; return the final answer.

    The scripted model is keyed by a conversation's first user message, which
    for a run with context is the session's first message.
    """
    model.script(message, Reply(text=f"answer to {message}"))
    response = await api.http.post(
        "/agents/data_manager/runs", data={"message": message, "session_id": session}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "COMPLETED"
    content: str = response.json()["content"]
    return content


async def wait_listed(api: Api, session: str, count: int) -> None:
    async def listing() -> list[Any]:
        got = await api.http.get(
            "/agents/data_manager/runs", params={"session_id": session, "status": "COMPLETED"}
        )
        runs: list[Any] = got.json()["runs"]
        return runs

    await eventually(listing, lambda runs: len(runs) == count)


def texts(request: dict[str, Any]) -> list[str]:
    """The text of every input item of a Responses API request, in order."""
    out = []
    for item in request["input"]:
        content = item.get("content")
        if isinstance(content, list):
            content = " ".join(part.get("text", "") for part in content)
        if content:
            out.append(f"{item.get('role')}: {content}")
    return out


async def test_second_run_gets_first_runs_conversation(api: Api, model: ScriptedModel) -> None:
    session = f"session-{uuid.uuid4()}"
    await complete_run(api, model, "my name is Zed", session)
    await wait_listed(api, session, 1)
    model.requests.clear()
    await complete_run(api, model, "what is my name?", session)
    [request] = model.requests
    assert texts(request)[-3:] == [
        "user: my name is Zed",
        "assistant: answer to my name is Zed",
        "user: what is my name?",
    ]


async def test_session_context_bounded_by_limit(
    client: Client, worker: RunningWorker, model: ScriptedModel, tmp_path: Path
) -> None:
    api = api_for(api_settings(model, tmp_path, worker.task_queue, session_context_limit=2), client)
    session = f"session-{uuid.uuid4()}"
    async with api.http:
        await complete_run(api, model, "one", session)
        second = await complete_run(api, model, "two", session)
        await wait_listed(api, session, 2)
        model.requests.clear()
        await complete_run(api, model, "three", session)
    [request] = model.requests
    conversation = json.dumps(texts(request))
    assert "user: one" not in conversation
    assert texts(request)[-3:] == ["user: two", f"assistant: {second}", "user: three"]


async def test_development_mode_owner_is_the_user_id_sent(api: Api, model: ScriptedModel) -> None:
    # Without authentication the body's user_id names the principal, so it owns the session.
    session = f"session-{uuid.uuid4()}"
    model.script("mine", Reply(text="yours"))
    first = await api.http.post(
        "/agents/data_manager/runs",
        data={"message": "mine", "session_id": session, "user_id": "u1"},
    )
    assert first.status_code == 200, first.text

    async def listed() -> list[Any]:
        got = await api.http.get("/agents/data_manager/runs", params={"session_id": session})
        runs: list[Any] = got.json()["runs"]
        return runs

    await eventually(listed, lambda runs: len(runs) == 1)
    other = await api.http.post(
        "/agents/data_manager/runs",
        data={"message": "theirs", "session_id": session, "user_id": "u2"},
    )
    assert_error(other, 409, "session_owned")
    assert (await listed())[0]["user_id"] == "u1"
