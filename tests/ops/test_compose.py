"""docker-compose.yml, .env.example and the Dockerfile agree with what the code reads.

No Docker engine runs here, so these tests read the files: services, images,
ports, health checks, and every environment variable against ``Settings``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from countersign import search_attributes
from countersign.settings import Settings
from devstack.temporal_server import SEARCH_ATTRIBUTE_CLI_TYPES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
OUR_SERVICES = ("worker", "api")
SETTINGS_PREFIXES = ("COUNTERSIGN_", "TEMPORAL_", "OPENAI_", "OTEL_")
TRUE_WORDS = {"1", "true", "yes", "on"}


def settings_aliases() -> set[str]:
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        assert isinstance(alias, AliasChoices)
        names.update(str(choice) for choice in alias.choices)
    return names


def env_example() -> dict[str, str]:
    """Every ``NAME=value`` of .env.example, active or commented out (both document)."""
    pairs: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            pairs[match.group(1)] = match.group(2)
    return pairs


def active_env_example() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {m.group(1) for line in lines if (m := re.fullmatch(r"([A-Z][A-Z0-9_]*)=.*", line))}


def environment(service: str) -> dict[str, Any]:
    env: dict[str, Any] = SERVICES[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: use the mapping form of environment"
    return env


def healthcheck_command(service: str) -> str:
    test = SERVICES[service]["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def test_compose_has_the_production_services() -> None:
    assert set(SERVICES) == {
        "postgresql",
        "temporal",
        "temporal-setup",
        "temporal-ui",
        "worker",
        "api",
    }
    assert SERVICES["postgresql"]["image"].startswith("postgres:")
    assert SERVICES["temporal"]["image"].startswith("temporalio/auto-setup:")
    assert SERVICES["temporal-ui"]["image"].startswith("temporalio/ui:")
    for name in OUR_SERVICES:
        assert SERVICES[name]["build"]["context"] == "."


@pytest.mark.parametrize("service", ["postgresql", "temporal", "worker", "api"])
def test_compose_long_running_services_have_health_checks(service: str) -> None:
    check = SERVICES[service]["healthcheck"]
    assert check["test"]
    assert check["interval"]


def test_compose_temporal_persists_in_postgresql() -> None:
    env = environment("temporal")
    assert env["DB"] == env["SQL_PLUGIN"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == env["SQL_HOST"] == "postgresql"
    assert env["POSTGRES_USER"] == environment("postgresql")["POSTGRES_USER"]
    assert SERVICES["temporal"]["depends_on"]["postgresql"]["condition"] == "service_healthy"
    # The dynamic config it is told to read is the file mounted there, and is YAML.
    target = "/etc/temporal/" + env["DYNAMIC_CONFIG_FILE_PATH"]
    [mount] = [v for v in SERVICES["temporal"]["volumes"] if v.split(":")[1] == target]
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    assert config["system.forceSearchAttributesCacheRefreshOnRead"][0]["value"] is True


def test_compose_registers_every_search_attribute() -> None:
    setup = SERVICES["temporal-setup"]
    assert setup["restart"] == "no"
    [mount] = setup["volumes"]
    source, target = mount.split(":")[:2]
    assert setup["entrypoint"][-1] == target
    script = (ROOT / source).read_text()
    registered = dict(re.findall(r"^register (\w+) (\w+)$", script, re.MULTILINE))
    assert registered == {
        key.name: SEARCH_ATTRIBUTE_CLI_TYPES[key.indexed_value_type]
        for key in search_attributes.ALL
    }
    for name in OUR_SERVICES:
        condition = SERVICES[name]["depends_on"]["temporal-setup"]["condition"]
        assert condition == "service_completed_successfully"


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_compose_sets_only_real_settings(service: str) -> None:
    ours = {name for name in environment(service) if name.startswith(SETTINGS_PREFIXES)}
    assert ours
    assert ours <= settings_aliases(), ours - settings_aliases()


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_compose_keeps_authentication_on(service: str) -> None:
    value = str(environment(service).get("COUNTERSIGN_AUTH_DISABLED", "false")).lower()
    assert value not in TRUE_WORDS


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_compose_points_at_the_temporal_service(service: str) -> None:
    host, port = environment(service)["TEMPORAL_ADDRESS"].split(":")
    assert host == "temporal"
    assert f"{port}:{port}" in SERVICES["temporal"]["ports"][0]


def test_compose_worker_scales() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    port = environment("worker")["COUNTERSIGN_WORKER_METRICS_PORT"]
    assert worker["expose"] == [port]
    assert f"127.0.0.1:{port}/metrics" in healthcheck_command("worker")
    assert worker["command"] == ["python", "-m", "worker"]


def test_compose_api_serves_on_the_settings_port() -> None:
    api = SERVICES["api"]
    port = Settings.model_fields["api_port"].default
    assert port == 7777
    assert str(port) == environment("api")["COUNTERSIGN_API_PORT"]
    assert api["ports"] == [f"{port}:{port}"]
    assert environment("api")["COUNTERSIGN_API_HOST"] == "0.0.0.0"
    assert f"127.0.0.1:{port}/health" in healthcheck_command("api")


def test_compose_temporal_ui_and_grpc_stay_on_localhost() -> None:
    # Reaching them means deciding by signal without the API's authentication.
    for service in ("temporal", "temporal-ui"):
        for mapping in SERVICES[service]["ports"]:
            assert mapping.startswith("127.0.0.1:")


def test_env_example_names_real_variables() -> None:
    compose_text = (ROOT / "docker-compose.yml").read_text()
    for name in env_example():
        if name.startswith(SETTINGS_PREFIXES):
            assert name in settings_aliases(), name
        else:
            assert "${" + name in compose_text, f"{name} is not used by docker-compose.yml"


def test_env_example_values_are_valid_settings() -> None:
    values = {k: v for k, v in env_example().items() if k in settings_aliases()}
    settings = Settings.model_validate(values)
    assert not settings.auth_disabled


def test_env_example_sets_what_compose_requires() -> None:
    compose_text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", compose_text))
    assert required
    assert required <= active_env_example()


def test_dockerfile_is_multi_stage_slim_and_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert stages == ["python:3.11-slim", "python:3.11-slim"]
    [user] = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user not in {"root", "0"}
    env_names = set(re.findall(r"\b([A-Z][A-Z0-9_]*)=", dockerfile))
    ours = {n for n in env_names if n.startswith(SETTINGS_PREFIXES)}
    assert ours <= settings_aliases(), ours - settings_aliases()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", "tests", ".env", ".git"} <= set(ignored)
