"""Development mode serves this machine only, and refuses what another site's page sends.

With authentication off the API trusts the caller's ``user_id``, so a page on
any site, in the browser of whoever runs the API, could post a form that
starts runs or approves calls as anyone; a rebound DNS name could read them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from api.main import create_app
from tests.api.conftest import assert_error
from tests.conftest import RunningWorker
from tests.scripted_openai import Reply, ScriptedModel
from tests.security.conftest import AGENT
from tests.security.live import serving


@pytest.fixture
async def dev_api(
    client: Client, worker: RunningWorker
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The API in development mode under uvicorn on loopback, and its URL."""
    settings = worker.settings.model_copy(update={"auth_disabled": True})
    async with (
        serving(create_app(settings, client)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        yield http, url


def test_development_mode_refuses_a_non_loopback_bind(worker: RunningWorker) -> None:
    dev = worker.settings.model_copy(update={"auth_disabled": True, "api_host": "0.0.0.0"})
    with pytest.raises(ValueError, match="serves loopback only"):
        create_app(dev)
    # Authentication on: any bind.
    create_app(dev.model_copy(update={"auth_disabled": False}))
    for host in ("127.0.0.1", "::1", "localhost"):
        create_app(dev.model_copy(update={"api_host": host}))


def test_python_m_api_exits_on_a_non_loopback_bind_in_development_mode() -> None:
    env = {
        **os.environ,
        "COUNTERSIGN_AUTH_DISABLED": "true",
        "COUNTERSIGN_API_HOST": "0.0.0.0",
        "COUNTERSIGN_API_PORT": "1",
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "api"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "serves loopback only" in done.stderr


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Host": "rebound.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
    ids=["cross-site-origin", "null-origin", "rebound-host", "sec-fetch-cross-site"],
)
async def test_cross_site_form_post_refused_and_no_run_starts(
    dev_api: tuple[httpx.AsyncClient, str], model: ScriptedModel, headers: dict[str, str]
) -> None:
    http, _ = dev_api
    message = f"from another site {uuid.uuid4().hex}"
    model.script(message, Reply(text="done"))

    response = await http.post(
        f"/agents/{AGENT}/runs",
        data={"message": message, "user_id": "victim"},
        headers=headers,
    )

    assert_error(response, 403, "forbidden")
    assert model.requests_for(message) == []


async def test_same_origin_form_post_accepted(
    dev_api: tuple[httpx.AsyncClient, str], model: ScriptedModel
) -> None:
    http, url = dev_api
    message = f"from the local page {uuid.uuid4().hex}"
    model.script(message, Reply(text="done"))

    response = await http.post(
        f"/agents/{AGENT}/runs",
        data={"message": message, "user_id": "me"},
        headers={"Origin": url, "Sec-Fetch-Site": "same-origin"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "COMPLETED"
    assert len(model.requests_for(message)) == 1
