"""A malformed ``page_token`` is the caller's error: 422 at once, Temporal never asked.

Temporal's page tokens are opaque and the SDK retries visibility's failure on a
bad one for seconds before the API could answer 502. The API binds each token
it returns to its listing and refuses any other before calling Temporal.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.api.conftest import Api, api_for, api_settings, assert_error, eventually
from tests.api.test_server import free_port
from tests.scripted_openai import Call, ScriptedModel

LISTINGS = ["/agents/data_manager/runs", "/approvals"]
#: Base64 that decodes (the old check let it through to Temporal), plain junk,
#: and a token of a format this API never issued.
BAD_TOKENS = ["AAAA", "not a token!", "x" * 40, "AQIDBAUGBwgJCgsMDQ4P"]


@pytest.mark.parametrize("path", LISTINGS)
@pytest.mark.parametrize("token", BAD_TOKENS)
async def test_bad_page_token_refused_without_asking_temporal(
    model: ScriptedModel, tmp_path: Path, path: str, token: str
) -> None:
    # A client of a port nobody listens on: any call to Temporal would answer 503.
    dead = await Client.connect(
        f"127.0.0.1:{free_port()}", lazy=True, data_converter=pydantic_data_converter
    )
    api = api_for(api_settings(model, tmp_path, "tq-paging"), dead)
    async with api.http:
        refused = await api.http.get(path, params={"page_token": token})
        assert_error(refused, 422, "invalid_page_token")
        # The same listing without the token does reach Temporal (and finds it down).
        assert_error(await api.http.get(path), 503, "temporal_unavailable")


async def test_tokens_page_through_and_belong_to_their_listing(
    api: Api, model: ScriptedModel
) -> None:
    session = f"paging-{uuid.uuid4()}"
    for n in range(3):
        await api.start_run(
            model, f"{session} resize {n}", Call("resize_volume", {"volume": "v1", "size_gb": 10})
        )

    async def listing(**params: str) -> dict[str, object]:
        response = await api.http.get("/agents/api_ops/runs", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    first = await eventually(
        lambda: listing(user_id="test_user", status="PAUSED", limit="2"),
        lambda body: body["next_page_token"] is not None,
    )
    token = first["next_page_token"]
    assert isinstance(token, str)
    second = await listing(user_id="test_user", status="PAUSED", limit="2", page_token=token)
    assert second["runs"]
    # The token continues its own listing only: another filter, a cut copy are refused.
    other = await api.http.get(
        "/agents/api_ops/runs", params={"status": "COMPLETED", "limit": "2", "page_token": token}
    )
    assert_error(other, 422, "invalid_page_token")
    cut = await api.http.get(
        "/agents/api_ops/runs",
        params={"user_id": "test_user", "status": "PAUSED", "limit": "2", "page_token": token[:12]},
    )
    assert_error(cut, 422, "invalid_page_token")
    inbox = await api.http.get("/approvals", params={"page_token": token})
    assert_error(inbox, 422, "invalid_page_token")
