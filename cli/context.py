"""What every CLI command gets: its arguments, where to print, the API client."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO, TypeVar

from pydantic import BaseModel

from cli.http import ApiClient
from cli.output import emit_json, parse, table

M = TypeVar("M", bound=BaseModel)

DEFAULT_API_URL = "http://127.0.0.1:7777"
DEFAULT_TIMEOUT = 60.0


class Context:
    """What every command gets: parsed arguments, output stream, API client."""

    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.out = out
        self._client: ApiClient | None = None

    @property
    def json(self) -> bool:
        """Whether to print JSON."""
        return bool(getattr(self.args, "json", False))

    @property
    def api(self) -> ApiClient:
        """The API client, created on first use."""
        if self._client is None:
            url = self.args.api_url or os.environ.get("COUNTERSIGN_API_URL") or DEFAULT_API_URL
            key = self.args.api_key or os.environ.get("COUNTERSIGN_API_KEY") or None
            self._client = ApiClient(url, key, self.args.timeout)
        return self._client

    def close(self) -> None:
        """Release the API client."""
        if self._client is not None:
            self._client.close()

    def print(self, text: str) -> None:
        """Write one block of text."""
        self.out.write(text + "\n")

    def print_list(
        self,
        raw: list[Any],
        model: type[M],
        what: str,
        headers: Sequence[str],
        row: Callable[[M], list[str]],
    ) -> int:
        """Print a list the API returned: JSON as it came, or a table of ``model`` rows.

        Returns:
            The exit code, 0.
        """
        if self.json:
            emit_json(self.out, raw)
            return 0
        rows = [parse(model, item, what) for item in raw]
        if not rows:
            self.print(f"no {what}s")
            return 0
        self.print(table(headers, [row(item) for item in rows]))
        return 0


def page_params(ctx: Context, filters: dict[str, str | None]) -> dict[str, str]:
    """Query parameters: the given filters and the paging options, unset ones left out."""
    values = {
        **filters,
        "limit": str(ctx.args.limit) if ctx.args.limit else None,
        "page_token": ctx.args.page_token,
    }
    return {k: v for k, v in values.items() if v}


def note_more(ctx: Context, body: Any) -> None:
    """Tell the user how to get the next page, if there is one."""
    # On stderr, so that --json output stays one JSON document.
    token = body.get("next_page_token") if isinstance(body, dict) else None
    if token:
        sys.stderr.write(f"more results: repeat with --page-token {token}\n")
