"""The API fuzzed from its own OpenAPI document (Schemathesis), on a real stack.

The app runs under uvicorn against the session's Temporal dev server and a
real worker; Schemathesis generates requests for every operation of the
document and checks each answer: no 5xx, every status documented, the body
valid against the documented schema and of a documented content type.

Random path ids only ever meet 404s, so each operation with path ids is also
fuzzed with the ids of a real run paused on a real call (the call under the
document's example call id), and ``/continue`` also with bodies that name
that call: the generated requests then reach the decision code itself. The
fuzzer may approve, reject or redeem on that run as it likes; every answer
must still be a documented one.

Bounded (examples per operation, no deadline) so the whole module takes
about a minute; ``COUNTERSIGN_FUZZ_EXAMPLES`` raises the bound.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from temporalio.client import Client

from api.examples import EXAMPLE_CALL_ID, EXAMPLE_RUN_ID
from api.main import create_app
from countersign.client import RunClient, build_run_input
from countersign.models import Principal, RunStatus
from countersign.security.api_keys import ApiKeyStore
from tests.api.conftest import SEED_ARGS, SEED_MESSAGE, api_settings
from tests.conftest import run_worker
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.security.live import serving

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
EXAMPLES = int(os.environ.get("COUNTERSIGN_FUZZ_EXAMPLES", "20"))


async def _seed_paused_run(client: Client, settings: Any, model: ScriptedModel) -> str:
    """A paused Data Manager run whose call has the document's example call id; its run id."""
    run_id = f"{EXAMPLE_RUN_ID[:16]}{uuid.uuid4().hex[:16]}"
    message = f"{SEED_MESSAGE} ({run_id})"
    model.script(message, Reply(calls=[Call("delete_records", SEED_ARGS, EXAMPLE_CALL_ID)]))
    run = build_run_input(
        settings,
        agent_id="data_manager",
        message=message,
        requester=Principal(id="test_user", roles=("requester",)),
        user_id="test_user",
        run_id=run_id,
    )
    _, paused = await RunClient.start(
        client, run, task_queue=settings.temporal_task_queue, wait=settings.wait_budget
    )
    assert paused is not None
    assert paused.status is RunStatus.PAUSED
    return run_id


def _fuzz(
    schema: Any, base_url: str, seed: Callable[[], dict[str, str]], headers: dict[str, str]
) -> list[str]:
    """Fuzz every operation; the failures, one report per operation that failed.

    ``seed`` makes a fresh paused run for each operation and returns its ids
    (and a decision token for it), since the fuzzer's own decisions and
    cancellations end the previous one's pause.
    """
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        real = seed()
        names = {p.name for p in operation.path_parameters}
        aim = _on_real_run(operation, names, real)
        strategies = [
            operation.as_strategy(generation_mode=mode, **aim)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
        if operation.path.endswith("/continue"):
            # Generated bodies never name the seeded call: these do, either way.
            strategies += [
                operation.as_strategy(
                    body={"tools": [{"tool_call_id": EXAMPLE_CALL_ID, "confirmed": confirmed}]},
                    media_type="application/json",
                    **aim,
                )
                for confirmed in (True, False)
            ]
        if names or operation.path == "/decision-tokens":
            # Random ids and tokens too: unknown runs, calls and agents.
            strategies += [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
        try:
            calls = _fuzz_one(st.one_of(strategies), base_url, headers)
        except Exception as err:
            failures.append(f"{operation.label}: {err}")
            continue
        print(f"{operation.label}: {len(calls)} requests, statuses {sorted(set(calls))}")
    return failures


def _fuzz_one(
    strategy: st.SearchStrategy[Any], base_url: str, headers: dict[str, str]
) -> list[int]:
    """Send the cases Hypothesis draws from ``strategy``; the statuses they got."""
    statuses: list[int] = []

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        response = case.call_and_validate(
            base_url=base_url, headers=headers, checks=CHECKS, timeout=60
        )
        statuses.append(response.status_code)

    fuzz()
    return statuses


def _on_real_run(operation: Any, names: set[str], real: dict[str, str]) -> dict[str, Any]:
    """``as_strategy`` arguments that aim an operation at the seeded run."""
    if operation.path == "/decision-tokens":
        return {"body": {"token": real["token"]}, "media_type": "application/json"}
    return {"path_parameters": {name: real[name] for name in names}} if names else {}


@pytest.mark.parametrize("auth", [False, True], ids=["development-mode", "admin-api-key"])
async def test_api_answers_every_generated_request_as_documented(
    client: Client, model: ScriptedModel, tmp_path: Path, auth: bool
) -> None:
    # With authentication on, as an admin (every route open, no rate limit), so
    # the generated requests reach past authentication as far as in development mode.
    secured: dict[str, object] = {
        "auth_disabled": False,
        "api_keys_file": tmp_path / "api_keys.json",
        "rate_limit_per_minute": 0,
        "rate_limit_roles": {},
    }
    settings_ = api_settings(
        model,
        tmp_path,
        f"tq-fuzz-{uuid.uuid4()}",
        decision_token_secret=secrets.token_urlsafe(40),
        wait_budget=10.0,
        **(secured if auth else {}),
    )
    headers = {}
    if auth:
        key = ApiKeyStore(settings_.api_keys_file).create("fuzz-admin", ["admin"]).key
        headers = {"Authorization": f"Bearer {key}"}
    app = create_app(settings_, client)
    async with run_worker(client, settings_), serving(app) as url:
        loop = asyncio.get_running_loop()

        async def seed() -> dict[str, str]:
            run_id = await _seed_paused_run(client, settings_, model)
            approval = f"{run_id}:{EXAMPLE_CALL_ID}"
            async with httpx.AsyncClient(base_url=url) as http:
                minted = await http.post(
                    f"/approvals/{approval}/tokens", json={"confirmed": True}, headers=headers
                )
            assert minted.status_code == 201, minted.text
            token: str = minted.json()["token"]
            return {
                "agent_id": "data_manager",
                "run_id": run_id,
                "approval_id": approval,
                "token": token,
            }

        def seed_from_thread() -> dict[str, str]:
            return asyncio.run_coroutine_threadsafe(seed(), loop).result(60)

        schema = schemathesis.openapi.from_dict(app.openapi())
        # Hypothesis runs blocking requests: in a thread, so the worker and the
        # API, on this event loop, keep serving them.
        failures = await asyncio.to_thread(_fuzz, schema, url, seed_from_thread, headers)
    assert failures == [], "\n\n".join(failures)
