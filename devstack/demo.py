"""``make demo``: the Data Manager's two requests against the running stack.

1. ``POST /agents/data_manager/runs`` (form-encoded): the agent wants to delete
   50 records, a call that needs confirmation, so the run answers ``PAUSED``;
2. ``POST /agents/data_manager/runs/{run_id}/continue`` with the pending call
   confirmed: the tool runs once and the run answers ``COMPLETED``.

It prints both answers. Start the stack first with ``make up``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import httpx

from countersign.settings import Settings

AGENT_ID = "data_manager"
SEED_MESSAGE = "Delete 50 old records from the users table"
USER_ID = "test_user"
SESSION_ID = "test_session"


class DemoError(Exception):
    """The demo could not go on; the message says why and what to do."""


def default_base_url(settings: Settings) -> str:
    """The API's URL from ``COUNTERSIGN_API_HOST`` and ``COUNTERSIGN_API_PORT``."""
    host = "127.0.0.1" if settings.api_host in {"0.0.0.0", "::"} else settings.api_host
    return f"http://{host}:{settings.api_port}"


def _post(http: httpx.Client, path: str, form: dict[str, str]) -> dict[str, Any]:
    try:
        response = http.post(path, data=form)
    except httpx.ConnectError as exc:
        raise DemoError(
            f"nothing answers at {http.base_url}: start the stack with `make up` "
            "(or set COUNTERSIGN_API_PORT to where the API listens)"
        ) from exc
    except httpx.TimeoutException as exc:
        raise DemoError(f"{path} did not answer within {http.timeout.read} s") from exc
    if response.status_code != httpx.codes.OK:
        raise DemoError(f"POST {path} answered {response.status_code}: {response.text}")
    body: dict[str, Any] = response.json()
    return body


def run_demo(base_url: str, *, out: Any = sys.stdout) -> dict[str, Any]:
    """Run the Data Manager flow; print the paused run and the completed run.

    Args:
        base_url: Where the API listens.
        out: Where to print (a text stream).

    Returns:
        The completed run as the API returned it.

    Raises:
        DemoError: The API is not running, refused a request, or the run did
            not pause or complete as the Data Manager flow does.
    """
    with httpx.Client(base_url=base_url, timeout=60.0) as http:
        paused = _post(
            http,
            f"/agents/{AGENT_ID}/runs",
            {"message": SEED_MESSAGE, "user_id": USER_ID, "session_id": SESSION_ID},
        )
        print("1. The run pauses for confirmation:\n", file=out)
        print(json.dumps(paused, indent=2), file=out)
        if paused.get("status") != "PAUSED":
            raise DemoError(f"expected a PAUSED run, got {paused.get('status')}")
        pending = [t for t in paused["tools"] if t.get("state") == "AWAITING_CONFIRMATION"]
        if not pending:
            raise DemoError("the paused run lists no call awaiting confirmation")
        call = pending[0]
        tools = [
            {
                "tool_call_id": call["tool_call_id"],
                "tool_name": call["tool_name"],
                "tool_args": call["tool_args"],
                "confirmed": True,
            }
        ]
        run_id = paused["run_id"]
        done = _post(
            http,
            f"/agents/{AGENT_ID}/runs/{run_id}/continue",
            {
                "tools": json.dumps(tools),
                "session_id": SESSION_ID,
                "user_id": USER_ID,
                "stream": "false",
            },
        )
        print(f"\n2. Confirmed {call['tool_name']}: the run completes:\n", file=out)
        print(json.dumps(done, indent=2), file=out)
        if done.get("status") != "COMPLETED":
            raise DemoError(f"expected a COMPLETED run, got {done.get('status')}")
        return done


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``make demo``.

    Returns:
        0 when the run paused and then completed, 1 otherwise.
    """
    parser = argparse.ArgumentParser(
        prog="python -m devstack.demo", description="Run the Data Manager's pause/confirm flow."
    )
    parser.add_argument("--url", default=None, help="API base URL (default from settings)")
    args = parser.parse_args(argv)
    base_url = args.url or default_base_url(Settings())
    try:
        run_demo(base_url)
    except DemoError as exc:
        print(f"make demo: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
