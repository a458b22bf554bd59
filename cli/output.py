"""How the CLI prints: tables for people, JSON for programs, and API bodies parsed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO, TypeVar

from pydantic import BaseModel, ValidationError

from cli.http import CliError

M = TypeVar("M", bound=BaseModel)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def args_text(value: dict[str, Any], limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def emit_json(out: TextIO, value: Any) -> None:
    json.dump(value, out, indent=2, default=str)
    out.write("\n")


def parse(model: type[M], value: Any, what: str) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise CliError(f"unexpected {what} from the API: {exc.errors()[0]['msg']}") from None


def items(body: Any, key: str) -> list[Any]:
    """The list in a page body (``{"runs": [...]}``) or a bare list."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and isinstance(body.get(key), list):
        items: list[Any] = body[key]
        return items
    raise CliError(f"unexpected answer from the API: no {key!r} list")
