"""Small helpers for the operations tests: free ports, waiting on a condition."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

import httpx


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def eventually(
    probe: Callable[[], Awaitable[bool]], *, within: float, what: str, interval: float = 0.1
) -> None:
    """Poll ``probe`` until it answers true; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        if await probe():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(interval)


async def http_get_text(url: str) -> str | None:
    """The body of a 200 answer, or ``None`` when nothing answers (yet) or not 200."""
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            response = await http.get(url)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == httpx.codes.OK else None
