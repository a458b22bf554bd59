"""Agents, health and the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

from tests.api.conftest import Api, assert_error


async def test_list_agents(api: Api) -> None:
    response = await api.http.get("/agents")
    assert response.status_code == 200, response.text
    assert {a["id"] for a in response.json()} == {"data_manager", "api_ops"}


async def test_read_agent_tools_and_policies(api: Api) -> None:
    response = await api.http.get("/agents/data_manager")
    assert response.status_code == 200, response.text
    agent = response.json()
    tools = {t["name"]: t for t in agent["tools"]["tools"]}
    delete = tools["delete_records"]
    assert delete["requires_confirmation"] == "always"
    assert delete["parameters"]["required"] == ["table_name", "count"]
    assert delete["parameters"]["properties"]["count"]["type"] == "integer"
    assert delete["allow_self_approval"] is True
    assert delete["confirmation_ttl_seconds"] == 24 * 3600
    ops = (await api.http.get("/agents/api_ops")).json()
    policies = {t["name"]: t for t in ops["tools"]["tools"]}
    assert policies["wire_money"]["approvals_required"] == 2
    assert policies["wire_money"]["allow_self_approval"] is False
    assert policies["resize_volume"]["allow_edit"] is True
    assert policies["lookup"]["requires_confirmation"] == "never"


async def test_read_agent_unknown(api: Api) -> None:
    assert_error(await api.http.get("/agents/nope"), 404, "unknown_agent")


async def test_health(api: Api) -> None:
    response = await api.http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["temporal"] == "reachable"
    assert body["auth"] == "disabled"


def _resolve(spec: dict[str, Any], node: Any, depth: int = 0) -> str:
    """The node's JSON with referenced schemas inlined (a few levels deep)."""
    text = json.dumps(node)
    if depth > 3:
        return text
    for name, schema in spec["components"]["schemas"].items():
        if f'"#/components/schemas/{name}"' in text:
            text += _resolve(spec, schema, depth + 1)
    return text


async def test_openapi_has_examples_for_every_route(api: Api) -> None:
    response = await api.http.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    operations = [
        (f"{method.upper()} {path}", operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) == 16
    for name, operation in operations:
        assert '"example' in _resolve(spec, operation), f"{name} has no example"
    docs = await api.http.get("/docs")
    assert docs.status_code == 200
