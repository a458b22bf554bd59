"""A webhook receiver on loopback that records what it takes (tests and recordings)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from activities.notify import EVENT_HEADER
from tests.scripted_openai import free_port


@dataclass
class Receiver:
    """What the receiver took; it answers 503 to its first ``fail_first`` requests."""

    url: str
    fail_first: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    attempts: int = 0

    @property
    def events(self) -> list[str]:
        return [h[EVENT_HEADER.lower()] for h in self.headers]


@asynccontextmanager
async def webhook_receiver(fail_first: int = 0) -> AsyncIterator[Receiver]:
    """Serve a receiver for the duration of the block."""
    port = free_port()
    box = Receiver(url=f"http://127.0.0.1:{port}/hooks/countersign", fail_first=fail_first)

    async def take(request: Request) -> Response:
        box.attempts += 1
        if box.attempts <= box.fail_first:
            return Response(status_code=503)
        box.headers.append(dict(request.headers))
        box.bodies.append(await request.body())
        return Response(status_code=204)

    app = Starlette(routes=[Route("/hooks/countersign", take, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    server.config.load()
    # Bound before serving, so the port takes connections as soon as we yield.
    serving = asyncio.create_task(server.serve(sockets=[server.config.bind_socket()]))
    try:
        yield box
    finally:
        server.should_exit = True
        await serving
