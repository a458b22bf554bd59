"""Rate limits per principal and route, and a request body size guard.

``RateLimiter`` is a token bucket per key: a budget of ``per_minute`` requests
of burst, refilled continuously at ``per_minute / 60`` per second; ``0`` turns
it off. A principal's budget is the largest of its roles' budgets
(``COUNTERSIGN_RATE_LIMIT_ROLES``; by default a ``service`` principal, the
backend that drives many flows at once, and an ``approver`` get far more than
the default), else ``COUNTERSIGN_RATE_LIMIT_PER_MINUTE``.

Buckets live in the API process: with N API replicas behind a load balancer a
principal may make up to N times its budget. That bounds abuse without a shared
store; size the budgets for one replica.

The API mounts ``BodySizeLimitMiddleware`` in ``create_app`` and checks the
buckets in its own dependencies (``api/deps.py``), which answer 429 with
``Retry-After``.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from fastapi import HTTPException, Request, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from countersign.models import ErrorCode, Principal


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by (principal, route), each with its principal's budget.

    Args:
        per_minute: Requests per minute and burst size for a key whose roles
            have no budget of their own; 0 disables the limit for them.
        role_budgets: Budget per role name; a principal gets the largest of
            its roles' budgets (0 for a role: that role is not limited).
        clock: Monotonic seconds (injectable for tests).
        max_keys: Idle buckets are dropped beyond this many, so memory stays
            bounded whatever the callers send.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        role_budgets: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.per_minute = per_minute
        self.role_budgets = dict(role_budgets or {})
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether requests without a role budget are limited at all."""
        return self.per_minute > 0

    def budget(self, roles: Iterable[str]) -> int:
        """Requests per minute for a principal with ``roles`` (0: unlimited)."""
        budgets = [self.role_budgets[r] for r in roles if r in self.role_budgets]
        if not budgets:
            return self.per_minute
        return 0 if 0 in budgets else max(budgets)

    def hit_principal(self, principal: Principal, route: str) -> float | None:
        """:meth:`hit` with the principal's id and its roles' budget."""
        return self.hit(principal.id, route, self.budget(principal.roles))

    def hit(self, key: str, route: str, per_minute: int | None = None) -> float | None:
        """Take one request from the bucket of ``key`` on ``route``.

        Args:
            key: Who is counted (a principal id, or an address).
            route: The route template (see :func:`route_key`).
            per_minute: The budget; the limiter's default when ``None``.

        Returns:
            ``None`` when the request may go ahead, else the seconds to wait
            before the next one would be allowed.
        """
        capacity = float(self.per_minute if per_minute is None else per_minute)
        if capacity <= 0:
            return None
        rate = capacity / 60.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get((key, route))
            if bucket is None:
                if len(self._buckets) >= self._max_keys:
                    self._prune(now)
                bucket = self._buckets[(key, route)] = _Bucket(capacity, now)
            else:
                bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / rate

    def _prune(self, now: float) -> None:
        # Buckets idle for a minute have refilled under the default budget and
        # carry no state worth keeping; if none is, drop the oldest half so a
        # flood of distinct keys cannot grow the map forever.
        idle = [k for k, b in self._buckets.items() if now - b.updated >= 60.0]
        if not idle:
            ordered = sorted(self._buckets, key=lambda k: self._buckets[k].updated)
            idle = ordered[: len(ordered) // 2 or 1]
        for k in idle:
            del self._buckets[k]


class RateLimited(HTTPException):
    """429 with ``Retry-After`` (whole seconds, rounded up) and a JSON error detail.

    ``detail`` is the dict ``{"detail": ..., "code": "rate_limited"}``, as for
    the other errors of ``api.auth``.
    """

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail={
                "detail": f"rate limit exceeded; retry in {seconds} s",
                "code": ErrorCode.RATE_LIMITED.value,
            },
            headers={"Retry-After": str(seconds)},
        )


def route_key(request: Request) -> str:
    """The method and the route's path template (``POST /agents/{agent_id}/runs``).

    The template, not the path, so that one principal cannot escape the limit
    by varying ids in the URL.
    """
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path
    return f"{request.method} {path}"


class _BodyTooLargeError(Exception):
    pass


class BodySizeLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 ``payload_too_large``.

    ``Content-Length`` is only a shortcut for an early answer: the body is read
    and counted as it arrives (chunked bodies have no length, and a client may
    lie), up to the limit, before the application sees any of it. Buffering
    costs at most ``max_bytes`` per request in flight.

    Args:
        app: The ASGI application.
        max_bytes: The largest body accepted.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        try:
            body_messages = await self._read_body(receive)
        except _BodyTooLargeError:
            await self._refuse(send)
            return
        pending = list(body_messages)

        async def replay() -> Message:
            # Hand the buffered body to the app, then pass through the live
            # channel (the app waits on it for http.disconnect when streaming).
            if pending:
                return pending.pop(0)
            return await receive()

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive) -> list[Message]:
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                raise _BodyTooLargeError
            if not message.get("more_body", False):
                return messages

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "detail": f"request body exceeds {self.max_bytes} bytes",
                "code": ErrorCode.PAYLOAD_TOO_LARGE.value,
            }
        ).encode()
        headers: list[tuple[bytes, bytes]] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            # The rest of the body is not read; the connection cannot be reused.
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
