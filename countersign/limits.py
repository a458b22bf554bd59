"""Limits: a run's options and caps, and the size of what requests may put into a run.

Every id or name a request carries is refused past ``MAX_ID_LENGTH`` before it
reaches Temporal, and a refused attempt is recorded as a bounded summary, so no
request, accepted or refused, can grow a run's history by much.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, Field

#: Longest id or name a request may carry (call ids, tool names, principal ids).
MAX_ID_LENGTH = 128
#: Most decisions one decide request may carry.
MAX_DECISIONS_PER_REQUEST = 100
#: A refused attempt keeps this many of the call ids it named, each cut to
#: ``REFUSAL_ID_CHARS`` characters, and the count of all of them.
REFUSAL_IDS_KEPT = 3
REFUSAL_ID_CHARS = 48
REFUSAL_REASON_CHARS = 200

#: A string field capped at ``MAX_ID_LENGTH``.
Id = Annotated[str, Field(max_length=MAX_ID_LENGTH)]


def cut(text: str, limit: int) -> str:
    """``text`` itself, or its start and an ellipsis within ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarise_refusal(data: Any) -> Any:
    """Bound a refused attempt's raw fields: the first ids, cut, their count, a cut reason."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    ids = data.get("tool_call_ids")
    if isinstance(ids, list):
        data.setdefault("tool_call_count", len(ids))
        data["tool_call_ids"] = [
            cut(i, REFUSAL_ID_CHARS) if isinstance(i, str) else i for i in ids[:REFUSAL_IDS_KEPT]
        ]
    for key, limit in (("reason", REFUSAL_REASON_CHARS), ("code", MAX_ID_LENGTH)):
        if isinstance(data.get(key), str):
            data[key] = cut(data[key], limit)
    return data


class RunOptions(BaseModel):
    """Per-run limits and activity options, fixed when the run starts.

    They travel in the workflow input rather than being read from the worker's
    environment so that a replay sees exactly what the first execution saw.
    """

    max_turns: int = 10
    default_confirmation_ttl: timedelta = timedelta(hours=24)
    tool_output_limit: int = 8000
    llm_timeout: timedelta = timedelta(seconds=120)
    llm_max_attempts: int = 6
    llm_retry_initial_interval: timedelta = timedelta(seconds=1)
    tool_timeout: timedelta = timedelta(seconds=60)
    tool_heartbeat_timeout: timedelta = timedelta(seconds=20)
    webhooks: bool = False
    webhook_retry_for: timedelta = timedelta(hours=24)
    # A turn cut by a dead worker is retried after this, not after llm_timeout.
    llm_heartbeat_timeout: timedelta = timedelta(seconds=10)
    # Over these the run ends in ERROR: its state travels in payloads that
    # Temporal refuses over 2 MB (which would fail the workflow task forever),
    # and one turn can add about max_calls_per_turn x tool_output_limit x 3.
    max_calls_per_turn: int = 32
    max_state_bytes: int = 1_000_000
