"""Rate limits that fit a backend, over real HTTP with authentication on.

A service principal driving many flows at once is not throttled at normal load,
and junk credentials from one address (every caller behind a proxy shares one)
never lock a valid credential out.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
import jwt

from countersign.security.api_keys import ApiKeyStore
from tests.api.conftest import assert_error
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.security.conftest import AGENT, Secure, SecureFactory

FLOWS = 20
READS_PER_FLOW = 8


def junk_credentials(count: int) -> list[dict[str, str]]:
    """Bad credentials of every shape: unknown keys, forged JWTs, garbage."""

    def forged_jwt() -> str:
        claims = {"sub": "mallory", "roles": ["admin"], "exp": int(time.time()) + 60}
        return jwt.encode(claims, secrets.token_urlsafe(40), "HS256")

    shapes = [
        lambda: {"Authorization": "Bearer csk_0123456789abcdef_" + secrets.token_urlsafe(32)},
        lambda: {"X-API-Key": "csk_fedcba9876543210_" + secrets.token_urlsafe(32)},
        lambda: {"Authorization": "Bearer " + forged_jwt()},
        lambda: {"Authorization": "Bearer " + secrets.token_hex(16)},
    ]
    return [shapes[n % len(shapes)]() for n in range(count)]


async def until_throttled(sec: Secure, headers: list[dict[str, str]]) -> list[httpx.Response]:
    """GET /agents with each of ``headers`` in turn, up to and including the first 429.

    The bucket refills while requests go (2 a second at the default budget), so
    how many pass before the first 429 depends on the machine's speed; each
    test asserts the least that must pass, never an exact count.
    """
    responses = []
    for h in headers:
        responses.append(await sec.http.get("/agents", headers=h))
        if responses[-1].status_code == 429:
            break
    return responses


async def test_valid_credentials_pass_after_120_junk_tokens_from_the_same_address(
    sec: Secure,
) -> None:
    assert sec.settings.rate_limit_per_minute == 120
    *refused, throttled = await until_throttled(sec, junk_credentials(240))
    by_key = await sec.http.get("/agents", headers=sec.auth("rita"))
    by_jwt = await sec.http.get("/agents", headers=sec.auth("alice"))

    assert len(refused) >= 120
    for response in refused:
        assert_error(response, 401, "unauthenticated")
    assert_error(throttled, 429, "rate_limited")
    assert int(throttled.headers["retry-after"]) >= 1
    # The same address, right after its 429: a valid credential is not locked out.
    assert by_key.status_code == 200, by_key.text
    assert by_jwt.status_code == 200, by_jwt.text


async def test_user_limited_where_service_principal_is_not(sec: Secure) -> None:
    store = ApiKeyStore(sec.settings.api_keys_file)
    service = {"X-API-Key": sec.remember(store.create("svc-backend", ["requester", "service"]).key)}
    budget = sec.settings.rate_limit_per_minute

    *allowed, limited = await until_throttled(sec, [sec.auth("rita")] * (3 * budget))
    # Twice what the user got through: more than a user's burst plus refill.
    as_service = [await sec.http.get("/agents", headers=service) for _ in range(2 * len(allowed))]

    assert len(allowed) >= budget
    assert {r.status_code for r in allowed} == {200}
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert {r.status_code for r in as_service} == {200}


async def test_service_principal_drives_20_concurrent_flows_of_10_requests(
    secure_api: SecureFactory, model: ScriptedModel
) -> None:
    async with secure_api() as sec:
        store = ApiKeyStore(sec.settings.api_keys_file)
        key = sec.remember(store.create("svc-flows", ["requester", "service"]).key)
        headers = {"X-API-Key": key}

        async def flow(n: int) -> list[int]:
            message = f"backend flow {n} {secrets.token_hex(3)}"
            model.script(message, Reply(calls=[Call("purge", {"target": f"t{n}"})]))
            started = await sec.http.post(
                f"/agents/{AGENT}/runs", data={"message": message}, headers=headers
            )
            statuses = [started.status_code]
            if started.status_code != 200:
                return statuses
            run: dict[str, Any] = started.json()
            sec.run_ids.add(run["run_id"])
            for _ in range(READS_PER_FLOW):
                read = await sec.http.get(f"/agents/{AGENT}/runs/{run['run_id']}", headers=headers)
                statuses.append(read.status_code)
            [call] = run["tools"]
            decided = await sec.http.post(
                f"/agents/{AGENT}/runs/{run['run_id']}/continue",
                json={"tools": [{"tool_call_id": call["tool_call_id"], "confirmed": False}]},
                headers=headers,
            )
            statuses.append(decided.status_code)
            return statuses

        results = await asyncio.gather(*(flow(n) for n in range(FLOWS)))

    assert [len(r) for r in results] == [2 + READS_PER_FLOW] * FLOWS
    assert {code for r in results for code in r} == {200}
