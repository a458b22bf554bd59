"""Rate limits per principal and route, and the request body size guard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.rate_limit import RateLimiter
from countersign.models import Principal
from countersign.security.api_keys import ApiKeyStore
from countersign.settings import Settings
from tests.security.apps import client_for, make_app


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.model_validate(
        {"auth_disabled": False, "api_keys_file": tmp_path / "k.json", "max_body_bytes": 2048}
    )


@pytest.fixture
def alice_key(settings: Settings) -> str:
    return ApiKeyStore(settings.api_keys_file).create("alice", ["viewer"]).key


def test_hit_allows_burst_then_reports_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock=clock)

    assert all(limiter.hit("alice", "GET /x") is None for _ in range(60))
    retry_after = limiter.hit("alice", "GET /x")

    assert retry_after == pytest.approx(1.0)


def test_hit_refills_over_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock)
    limiter.hit("alice", "GET /x")
    limiter.hit("alice", "GET /x")
    assert limiter.hit("alice", "GET /x") == pytest.approx(30.0)

    clock.now += 30.0

    assert limiter.hit("alice", "GET /x") is None


def test_hit_keeps_principals_and_routes_apart() -> None:
    limiter = RateLimiter(1, clock=FakeClock())

    assert limiter.hit("alice", "GET /x") is None
    assert limiter.hit("alice", "GET /x") is not None
    assert limiter.hit("bob", "GET /x") is None
    assert limiter.hit("alice", "POST /x") is None


def test_hit_zero_means_off() -> None:
    limiter = RateLimiter(0)

    assert all(limiter.hit("alice", "GET /x") is None for _ in range(1000))


def test_hit_bounds_the_number_of_buckets() -> None:
    limiter = RateLimiter(10, clock=FakeClock(), max_keys=100)

    for n in range(1000):
        limiter.hit(f"p{n}", "GET /x")

    assert len(limiter._buckets) <= 100


async def test_rate_limit_burst_then_429(settings: Settings, alice_key: str) -> None:
    clock = FakeClock()
    app = make_app(settings, RateLimiter(3, clock=clock))
    async with client_for(app, **{"x-api-key": alice_key}) as http:
        statuses = [(await http.get("/whoami")).status_code for _ in range(3)]
        limited = await http.get("/whoami")
        clock.now += 20.0
        after_refill = await http.get("/whoami")

    assert statuses == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "20"
    assert limited.json() == {
        "detail": "rate limit exceeded; retry in 20 s",
        "code": "rate_limited",
    }
    assert after_refill.status_code == 200


async def test_rate_limit_counts_route_template_not_path(
    settings: Settings, alice_key: str
) -> None:
    app = make_app(settings, RateLimiter(2, clock=FakeClock()))
    async with client_for(app, **{"x-api-key": alice_key}) as http:
        first = await http.get("/items/a")
        second = await http.get("/items/b")
        third = await http.get("/items/c")
        other_route = await http.get("/whoami")

    assert (first.status_code, second.status_code) == (200, 200)
    assert third.status_code == 429
    assert other_route.status_code == 200


async def test_body_limit_over_content_length_413(settings: Settings, alice_key: str) -> None:
    async with client_for(make_app(settings), **{"x-api-key": alice_key}) as http:
        response = await http.post("/upload", content=b"x" * 4096)

    assert response.status_code == 413
    assert response.json() == {
        "detail": "request body exceeds 2048 bytes",
        "code": "payload_too_large",
    }


async def test_body_limit_chunked_without_length_413(settings: Settings, alice_key: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"y" * 512

    async with client_for(make_app(settings), **{"x-api-key": alice_key}) as http:
        response = await http.post("/upload", content=chunks())

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_body_limit_lying_content_length_413(settings: Settings, alice_key: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"z" * 512

    headers = {"content-length": "10"}
    async with client_for(make_app(settings), **{"x-api-key": alice_key}) as http:
        response = await http.post("/upload", content=chunks(), headers=headers)

    assert response.status_code == 413


async def test_body_limit_under_limit_reaches_route(settings: Settings, alice_key: str) -> None:
    async with client_for(make_app(settings), **{"x-api-key": alice_key}) as http:
        response = await http.post("/upload", content=b"x" * 2048)

    assert response.status_code == 200
    assert response.json()["size"] == 2048


def test_budget_is_the_largest_of_the_roles_budgets() -> None:
    limiter = RateLimiter(120, role_budgets={"service": 6000, "approver": 600, "bot": 0})

    assert limiter.budget(["viewer"]) == 120
    assert limiter.budget(["approver", "viewer"]) == 600
    assert limiter.budget(["approver", "service"]) == 6000
    # 0 is "not limited", the largest budget of all.
    assert limiter.budget(["service", "bot"]) == 0


def test_hit_principal_uses_its_roles_budget() -> None:
    limiter = RateLimiter(2, role_budgets={"service": 600}, clock=FakeClock())
    user = Principal(id="rita", roles=("requester",))
    backend = Principal(id="svc", roles=("requester", "service"))

    assert [limiter.hit_principal(user, "GET /x") for _ in range(3)][-1] == pytest.approx(30.0)
    assert all(limiter.hit_principal(backend, "GET /x") is None for _ in range(600))
    assert limiter.hit_principal(backend, "GET /x") == pytest.approx(0.1)


def test_role_budgets_setting_parsed_and_checked() -> None:
    assert Settings().rate_limit_roles == {"service": 6000, "approver": 600}
    parsed = Settings.model_validate({"rate_limit_roles": "service=0, ops=50"})
    assert parsed.rate_limit_roles == {"service": 0, "ops": 50}
    with pytest.raises(ValueError, match="role=requests_per_minute"):
        Settings.model_validate({"rate_limit_roles": "service"})
    with pytest.raises(ValueError, match="0 \\(unlimited\\) or more"):
        Settings.model_validate({"rate_limit_roles": "service=-1"})
