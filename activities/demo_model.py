"""The offline demo model: lets the whole flow run on a machine with no API key.

It is not a language model and not a test double. It reads a few kinds of
request with regular expressions, calls the matching tools with the right
arguments, and summarises the tool results afterwards. It is deterministic, so
replays and retries see the same answer. Every run it serves says so in its
view (``demo_model: true``) and the worker announces it in the logs.
"""

from __future__ import annotations

import hashlib
import json
import re

from activities.raw_turn import RawTurn
from countersign import Agent
from countersign.models import ChatMessage, ModelToolCall, ModelTurnInput, Usage

DEMO_MODEL_NAME = "countersign-demo (offline, not an LLM)"

_DELETE = re.compile(
    r"\b(?:delete|remove|purge|drop)\s+(?:the\s+)?(\d+)\s+(?:\w+\s+){0,3}?"
    r"(?:from|in)\s+(?:the\s+)?[`'\"]?(\w+)[`'\"]?",
    re.IGNORECASE,
)
_NOTIFY = re.compile(
    r"\b(?:notify|tell|alert|message)\s+(?:the\s+)?(.+?)\s+(?:that|about)\s+(.+?)(?:[.!]\s*$|$)",
    re.IGNORECASE,
)
_VERB = r"(?:notify|tell|alert|message|delete|remove|purge|drop)\b"
_SPLIT = re.compile(
    r"\s*(?:,\s*)?\b(?:and then|then|and also|and)\b\s+(?=" + _VERB + ")", re.IGNORECASE
)

_HELP = (
    "I am the offline demo model: set `OPENAI_API_KEY` for a real one. I understand requests "
    "such as *Delete 50 old records from the users table* and *Notify the on-call team that "
    "the backup finished*."
)


def _words(text: str) -> int:
    return len(text.split())


def _calls_for(agent: Agent, request: str, run_id: str, turn: int) -> list[ModelToolCall]:
    calls: list[tuple[str, dict[str, object]]] = []
    for clause in _SPLIT.split(request):
        delete = _DELETE.search(clause)
        notify = _NOTIFY.search(clause)
        if delete and agent.get_tool("delete_records"):
            calls.append(
                (
                    "delete_records",
                    {"table_name": delete.group(2).lower(), "count": int(delete.group(1))},
                )
            )
        elif notify and agent.get_tool("send_notification"):
            calls.append(
                ("send_notification", {"recipient": notify.group(1), "message": notify.group(2)})
            )
    return [
        ModelToolCall(
            tool_call_id="fc_demo_"
            + hashlib.sha256(f"{run_id}:{turn}:{index}".encode()).hexdigest()[:24],
            tool_name=name,
            arguments=json.dumps(args),
        )
        for index, (name, args) in enumerate(calls)
    ]


def _summary(results: list[ChatMessage]) -> str:
    lines = ["Here is what happened:", ""]
    for result in results:
        text = result.content or ""
        if text.startswith("rejected by"):
            lines.append(f"- **{result.tool_name}** was not run: it was {text}.")
        elif text.startswith("denied:"):
            lines.append(f"- **{result.tool_name}** was not run: {text[len('denied: ') :]}.")
        elif text.startswith("error:"):
            lines.append(f"- **{result.tool_name}** failed: {text[len('error: ') :]}")
        else:
            lines.append(f"- **{result.tool_name}**: {text}")
    return "\n".join(lines)


def demo_turn(agent: Agent, turn: ModelTurnInput) -> RawTurn:
    """The demo model's answer to the conversation so far."""
    messages = turn.messages
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    since = messages[last_user + 1 :]
    tool_results = [m for m in since if m.role == "tool"]
    request = messages[last_user].content or "" if last_user >= 0 else ""
    prompt_tokens = sum(_words(m.content or "") for m in messages)
    if tool_results:
        content = _summary(tool_results)
        return RawTurn(content, [], _usage(prompt_tokens, content), DEMO_MODEL_NAME)
    calls = _calls_for(agent, request, turn.run_id, turn.turn)
    if calls:
        return RawTurn(None, calls, _usage(prompt_tokens, ""), DEMO_MODEL_NAME)
    return RawTurn(_HELP, [], _usage(prompt_tokens, _HELP), DEMO_MODEL_NAME)


def _usage(prompt_tokens: int, content: str) -> Usage:
    out = _words(content)
    return Usage(input_tokens=prompt_tokens, output_tokens=out, total_tokens=prompt_tokens + out)
