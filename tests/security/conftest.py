"""The real API with authentication ON, over real HTTP, on a real worker.

Principals get API keys from the real key store (one of them a JWT instead);
every secret a test uses is remembered, and when the test ends every workflow
history on its task queue, and every log record, is scanned for them.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from temporalio.client import Client

from api.main import create_app
from countersign.client import workflow_id
from countersign.demo_db import DemoDatabase
from countersign.security.api_keys import ApiKeyStore
from countersign.settings import Settings
from tests.api.conftest import eventually
from tests.conftest import RunningWorker, make_settings, run_worker
from tests.scripted_openai import Call, Reply, ScriptedModel
from tests.security.live import serving

SEC_AGENTS = "tests.security.agents_for_security"
AGENT = "sec_ops"

#: Who the tests act as, and their roles (``alice`` signs in with a JWT).
PRINCIPALS: dict[str, list[str]] = {
    "rita": ["requester"],
    "rick": ["requester"],
    "alice": ["approver"],
    "bob": ["approver"],
    "dora": ["approver", "dba"],
    "vera": ["viewer"],
    "ada": ["admin"],
}
JWT_USER = "alice"


def security_settings(
    model: ScriptedModel, tmp_path: Path, task_queue: str, **overrides: object
) -> Settings:
    """Settings with authentication on, fresh secrets, and the security test agent."""
    values: dict[str, object] = {
        "auth_disabled": False,
        "api_keys_file": tmp_path / "api_keys.json",
        "jwt_secret": secrets.token_urlsafe(40),
        "decision_token_secret": secrets.token_urlsafe(40),
        "decision_proof_keys": [secrets.token_urlsafe(40)],
        "agent_modules": [SEC_AGENTS],
        "wait_budget": 20.0,
    }
    values.update(overrides)
    return make_settings(model, tmp_path, task_queue, **values)


@pytest.fixture
async def worker(
    client: Client, model: ScriptedModel, tmp_path: Path
) -> AsyncIterator[RunningWorker]:
    """A worker that also runs the security agent (overrides the shared fixture)."""
    settings = security_settings(model, tmp_path, f"tq-sec-{uuid.uuid4()}")
    async with run_worker(client, settings) as running:
        yield running


@dataclass
class Secure:
    """The API with auth on, an HTTP client, and a credential per principal."""

    settings: Settings
    http: httpx.AsyncClient
    client: Client
    db: DemoDatabase
    credentials: dict[str, str] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)
    run_ids: set[str] = field(default_factory=set)

    def remember(self, secret: str) -> str:
        """Add a value that must never reach history or logs; return it."""
        self.secrets.add(secret)
        return secret

    def jwt(self, sub: str, roles: list[str], *, ttl: float = 300, **claims: Any) -> str:
        """An HS256 JWT signed with the API's secret."""
        assert self.settings.jwt_secret is not None
        payload = {"sub": sub, "roles": roles, "exp": int(time.time() + ttl), **claims}
        token = jwt.encode(payload, self.settings.jwt_secret.get_secret_value(), "HS256")
        return self.remember(token)

    @staticmethod
    def pid(who: str) -> str:
        """The principal id ``who`` acts as: ``key:<name>``; ``jwt:-:<name>`` for the JWT user."""
        return f"jwt:-:{who}" if who == JWT_USER else f"key:{who}"

    def auth(self, who: str | None) -> dict[str, str]:
        """Headers authenticating as ``who`` (``None``: no credentials)."""
        if who is None:
            return {}
        return {"Authorization": f"Bearer {self.credentials[who]}"}

    async def start(
        self, model: ScriptedModel, who: str, message: str, *calls: Call
    ) -> dict[str, Any]:
        """Start a run as ``who`` whose first model turn makes ``calls``; it must pause."""
        model.script(message, Reply(calls=list(calls)))
        response = await self.http.post(
            f"/agents/{AGENT}/runs", data={"message": message}, headers=self.auth(who)
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        self.run_ids.add(body["run_id"])
        assert body["status"] == "PAUSED", body
        return body

    async def run(self, run_id: str) -> dict[str, Any]:
        """The run body, read as the admin."""
        response = await self.http.get(f"/agents/{AGENT}/runs/{run_id}", headers=self.auth("ada"))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def audit(self, run_id: str) -> list[dict[str, Any]]:
        """The run's audit events, read as the admin."""
        response = await self.http.get(
            f"/agents/{AGENT}/runs/{run_id}/audit", headers=self.auth("ada")
        )
        assert response.status_code == 200, response.text
        assert response.json()["chain_intact"] is True
        events: list[dict[str, Any]] = response.json()["events"]
        return events

    async def approve(self, who: str | None, call: dict[str, Any], **body: Any) -> httpx.Response:
        """``POST /approvals/{id}/approve`` as ``who``."""
        return await self.http.post(
            f"/approvals/{call['approval_id']}/approve", json=body, headers=self.auth(who)
        )

    async def mint(self, who: str, call: dict[str, Any], **body: Any) -> httpx.Response:
        """``POST /approvals/{id}/tokens`` as ``who``; a token it returns is remembered."""
        response = await self.http.post(
            f"/approvals/{call['approval_id']}/tokens",
            json={"confirmed": True, **body},
            headers=self.auth(who),
        )
        if response.status_code == 201:
            self.remember(response.json()["token"])
        return response

    async def redeem(self, token: str, **body: Any) -> httpx.Response:
        """``POST /decision-tokens`` with no credentials."""
        return await self.http.post("/decision-tokens", json={"token": token, **body})


def _with_payloads(history_json: str) -> str:
    """The history's JSON followed by every payload's data, decoded.

    ``to_json()`` keeps payload data base64-encoded, so a secret in an input,
    a result, an update or a search attribute would not show in it as text.
    """
    decoded: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, str) and "metadata" in node:
                decoded.append(base64.b64decode(data).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history_json))
    return "\n".join([history_json, *decoded])


async def histories_on(client: Client, task_queue: str, expected: set[str]) -> dict[str, str]:
    """Every workflow history on ``task_queue`` (JSON and decoded payloads), by workflow id.

    Waits until visibility lists the ``expected`` runs.
    """
    query = f"TaskQueue = '{task_queue}'"

    async def listed() -> set[str]:
        return {e.id async for e in client.list_workflows(query)}

    wanted = {workflow_id(r) for r in expected}
    ids = await eventually(listed, lambda found: wanted <= found)
    out = {}
    for wf_id in sorted(ids):
        history = await client.get_workflow_handle(wf_id).fetch_history()
        out[wf_id] = _with_payloads(history.to_json())
    return out


def leaks(texts: dict[str, str], secret_values: set[str]) -> list[tuple[str, str]]:
    """``(where, secret prefix)`` for each secret found in each text."""
    return [
        (where, secret[:12] + "...")
        for where, text in texts.items()
        for secret in secret_values
        if secret in text
    ]


SecureFactory = Callable[..., AbstractAsyncContextManager[Secure]]


@pytest.fixture
def secure_api(
    client: Client,
    worker: RunningWorker,
    model: ScriptedModel,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> SecureFactory:
    """Open the API with auth on (settings overridable); on exit, scan for secrets."""

    @asynccontextmanager
    async def open_api(**overrides: object) -> AsyncIterator[Secure]:
        caplog.set_level(logging.DEBUG)
        settings = worker.settings.model_copy(update=overrides)
        store = ApiKeyStore(settings.api_keys_file)
        app = create_app(settings, client)
        async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            sec = Secure(settings, http, client, worker.db)
            for secret in (
                settings.jwt_secret,
                settings.decision_token_secret,
                *settings.decision_proof_keys,
            ):
                if secret is not None:
                    sec.remember(secret.get_secret_value())
            for name, roles in PRINCIPALS.items():
                if name == JWT_USER:
                    sec.credentials[name] = sec.jwt(name, roles, ttl=600)
                else:
                    sec.credentials[name] = sec.remember(store.create(name, roles).key)
            try:
                yield sec
            finally:
                histories = await histories_on(client, worker.task_queue, sec.run_ids)
                logs = {f"log:{r.name}": r.getMessage() for r in caplog.records}
                for wf_id in histories:
                    await _terminate(client, wf_id)
        assert leaks(histories, sec.secrets) == []
        assert leaks(logs, sec.secrets) == []

    return open_api


async def _terminate(client: Client, wf_id: str) -> None:
    # Leave no paused run behind: other tests' inboxes list every paused run.
    handle = client.get_workflow_handle(wf_id)
    if (await handle.describe()).close_time is None:
        await handle.terminate("security test cleanup")


@pytest.fixture
async def sec(secure_api: SecureFactory) -> AsyncIterator[Secure]:
    """The API with auth on and default limits."""
    async with secure_api() as api:
        yield api
