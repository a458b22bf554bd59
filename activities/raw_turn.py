"""What a model said in one turn, before its calls are checked against the tools."""

from __future__ import annotations

from dataclasses import dataclass

from countersign.models import ModelToolCall, Usage


@dataclass(frozen=True)
class RawTurn:
    """Text, tool calls with raw JSON arguments, usage and the model's name."""

    content: str | None
    calls: list[ModelToolCall]
    usage: Usage
    model: str
