"""API replicas share one key file: a revocation through one is refused by all.

Two real ``python -m api`` processes (two replicas, each with its own cache)
read one key file; the CLI changes it as an operator would on one replica.
Neither replica restarts.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
from temporalio.client import Client

from countersign.security.api_keys import ApiKeyStore
from tests.api.conftest import assert_error, eventually
from tests.scripted_openai import free_port

REPO = Path(__file__).parents[2]


@asynccontextmanager
async def replica(client: Client, keys_file: Path, log: Path) -> AsyncIterator[httpx.AsyncClient]:
    """One API process with authentication on, reading ``keys_file``."""
    port = free_port()
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "COUNTERSIGN_AUTH_DISABLED": "false",
        "COUNTERSIGN_API_KEYS_FILE": str(keys_file),
        "COUNTERSIGN_API_HOST": "127.0.0.1",
        "COUNTERSIGN_API_PORT": str(port),
    }
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "api", cwd=REPO, env=env, stdout=out, stderr=out
        )
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)

    async def health() -> int | None:
        if process.returncode is not None:
            output = await asyncio.to_thread(log.read_text)
            raise AssertionError(f"the API exited at start:\n{output}")
        try:
            return (await http.get("/health")).status_code
        except httpx.TransportError:
            return None

    try:
        await eventually(health, lambda status: status == 200, within=30)
        yield http
    finally:
        await http.aclose()
        process.terminate()
        await asyncio.wait_for(process.wait(), 20)


async def cli(*args: str | Path) -> str:
    """Run the ``countersign`` CLI (as an operator on a replica); return its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        *map(str, args),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def status_on(http: httpx.AsyncClient, key: str) -> int:
    return (await http.get("/agents", headers={"X-API-Key": key})).status_code


async def test_key_revoked_through_one_replica_is_refused_by_the_other(
    client: Client, tmp_path: Path
) -> None:
    keys_file = tmp_path / "shared" / "api_keys.json"
    store = ApiKeyStore(keys_file)
    rita = store.create("rita", ["requester"])
    vera = store.create("vera", ["viewer"])
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(replica(client, keys_file, tmp_path / "one.log"))
        two = await stack.enter_async_context(replica(client, keys_file, tmp_path / "two.log"))
        assert [await status_on(api, rita.key) for api in (one, two)] == [200, 200]

        await cli("keys", "revoke", rita.record.key_id, "--file", keys_file)

        for api in (one, two):
            await eventually(lambda api=api: status_on(api, rita.key), lambda s: s == 401)
        refused = await two.get("/agents", headers={"X-API-Key": rita.key})
        kept = [await status_on(api, vera.key) for api in (one, two)]

    assert_error(refused, 401, "unauthenticated")
    assert kept == [200, 200]


async def test_key_created_on_one_replica_is_accepted_by_the_other(
    client: Client, tmp_path: Path
) -> None:
    keys_file = tmp_path / "shared" / "api_keys.json"
    vera = ApiKeyStore(keys_file).create("vera", ["viewer"])
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(replica(client, keys_file, tmp_path / "one.log"))
        two = await stack.enter_async_context(replica(client, keys_file, tmp_path / "two.log"))
        # Both replicas have read (and cached) the file before the key exists.
        assert [await status_on(api, vera.key) for api in (one, two)] == [200, 200]

        output = await cli(
            "keys", "create", "--id", "dora", "--roles", "viewer", "--file", keys_file
        )
        [key] = [word for word in output.split() if word.startswith("csk_")]

        for api in (one, two):
            await eventually(lambda api=api: status_on(api, key), lambda s: s == 200)
