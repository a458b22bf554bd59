"""``GET /agents``: each tool's confirmation policy, as the ``@tool`` arguments built it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from tests.api.conftest import api_for, api_settings, assert_error
from tests.scripted_openai import ScriptedModel


async def _tools(model: ScriptedModel, tmp_path: Path, client: Client) -> dict[str, Any]:
    settings = api_settings(model, tmp_path, "tq-agents", confirmation_ttl=90.0)
    api = api_for(settings, client)
    async with api.http:
        response = await api.http.get("/agents/api_ops")
    assert response.status_code == 200, response.text
    return {t["name"]: t for t in response.json()["tools"]["tools"]}


async def test_agent_tools_show_the_policy_the_decorator_built(
    model: ScriptedModel, tmp_path: Path, client: Client
) -> None:
    tools = await _tools(model, tmp_path, client)

    # No ttl given: the settings' default, in seconds; denied at expiry by default.
    assert tools["resize_volume"] | {"parameters": None, "description": None} == {
        "name": "resize_volume",
        "description": None,
        "parameters": None,
        "requires_confirmation": "always",
        "approver_roles": [],
        "approvals_required": 1,
        "allow_self_approval": True,
        "confirmation_ttl_seconds": 90.0,
        "on_timeout": "deny",
        "allow_edit": True,
    }
    # A ttl given on the tool wins over the default.
    assert tools["short_fuse"]["confirmation_ttl_seconds"] == pytest.approx(0.3)
    # Several approvals: self-approval is off unless the tool says otherwise.
    assert tools["wire_money"]["approvals_required"] == 2
    assert tools["wire_money"]["allow_self_approval"] is False
    assert tools["lookup"]["requires_confirmation"] == "never"


async def test_unknown_agent_is_404(model: ScriptedModel, tmp_path: Path, client: Client) -> None:
    api = api_for(api_settings(model, tmp_path, "tq-agents"), client)
    async with api.http:
        response = await api.http.get("/agents/nope")
    assert_error(response, 404, "unknown_agent")


def test_run_client_imports_no_workflow_code() -> None:
    # The client calls handlers by name; importing the workflow module would
    # bring back the cycle workflows -> countersign -> workflows.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, countersign.client, api.main; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'workflows'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"
