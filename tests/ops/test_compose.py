"""docker-compose.yml, .env.example and the Dockerfile agree with what the code reads.

No Docker engine runs here, so these tests read the files: services, images,
start-up order, ports, health checks, the proxy's configuration, and every
environment variable against ``Settings`` (and which service may see which).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from countersign import search_attributes
from countersign.settings import Settings
from devstack.temporal_server import SEARCH_ATTRIBUTE_CLI_TYPES, temporal_cli
from tests.ops.helpers import free_port
from worker import GRACEFUL_SHUTDOWN

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
OUR_SERVICES = ("worker", "api")
JOBS = ("temporal-schema", "temporal-namespace")
SETTINGS_PREFIXES = ("COUNTERSIGN_", "TEMPORAL_", "OPENAI_", "OTEL_")
TRUE_WORDS = {"1", "true", "yes", "on"}

#: The Temporal SDK's environment configuration (``temporalio.envconfig``),
#: from Temporal's client environment configuration reference. Countersign
#: reads these too, so deployments may set them although ``Settings`` has no
#: field of that name.
TEMPORAL_ENVCONFIG = frozenset(
    {
        "TEMPORAL_CONFIG_FILE",
        "TEMPORAL_PROFILE",
        "TEMPORAL_ADDRESS",
        "TEMPORAL_NAMESPACE",
        "TEMPORAL_API_KEY",
        "TEMPORAL_TLS",
        "TEMPORAL_TLS_CLIENT_CERT_PATH",
        "TEMPORAL_TLS_CLIENT_CERT_DATA",
        "TEMPORAL_TLS_CLIENT_KEY_PATH",
        "TEMPORAL_TLS_CLIENT_KEY_DATA",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
        "TEMPORAL_TLS_SERVER_CA_CERT_DATA",
        "TEMPORAL_TLS_SERVER_NAME",
        "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION",
    }
)

#: Which service may receive each secret. A new secret setting fails
#: ``test_every_secret_has_an_owner`` until it is placed here.
SECRET_OWNERS: dict[str, set[str]] = {
    "temporal_api_key": {"worker", "api"},
    "openai_api_key": {"worker"},
    "webhook_secrets": {"worker"},
    "jwt_secret": {"api"},
    "decision_token_secret": {"api"},
    # The API signs decisions with it, the worker's validator checks them.
    "decision_proof_keys": {"worker", "api"},
    "audit_head_key": {"api"},
}

#: Settings only one side reads: handing them to the other is a leak or noise.
API_ONLY = {
    "api_host",
    "api_port",
    "auth_disabled",
    "api_keys_file",
    "jwt_secret",
    "jwt_public_key",
    "jwt_jwks_url",
    "jwt_jwks_cache",
    "jwt_jwks_cooldown",
    "jwt_audience",
    "jwt_issuer",
    "jwt_leeway",
    "decision_token_secret",
    "audit_head_key",
    "operator_ids",
    "rate_limit_per_minute",
    "rate_limit_roles",
    "wait_budget",
}
WORKER_ONLY = {
    "model_provider",
    "openai_api_key",
    "openai_base_url",
    "openai_model",
    "openai_api",
    "webhook_secrets",
    "webhook_timeout",
    "demo_db_path",
    "worker_metrics_port",
    "worker_max_cached_workflows",
}


def aliases_of(field: str) -> set[str]:
    """The environment variable names of one ``Settings`` field."""
    alias = Settings.model_fields[field].validation_alias
    assert isinstance(alias, AliasChoices)
    return {str(choice) for choice in alias.choices}


def settings_aliases() -> set[str]:
    """Every environment variable name that ``Settings`` reads."""
    names: set[str] = set()
    for field in Settings.model_fields:
        names |= aliases_of(field)
    return names


def known_variables() -> set[str]:
    """Every variable Countersign's processes read: ``Settings`` plus envconfig."""
    return settings_aliases() | TEMPORAL_ENVCONFIG


def compose_default(value: object) -> str:
    """A compose value with ``${NAME:-default}`` replaced by its default (what .env may change)."""
    return re.sub(r"\$\{\w+(?::-([^}]*)|:\?[^}]*)?\}", lambda m: m.group(1) or "", str(value))


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


def depends_on(service: str) -> dict[str, str]:
    """Each dependency of ``service`` with its condition."""
    deps = SERVICES[service].get("depends_on", {})
    assert isinstance(deps, dict), f"{service}: use the long form of depends_on"
    return {name: spec["condition"] for name, spec in deps.items()}


def mounted_file(service: str, target: str) -> Path:
    """The repository file that ``service`` mounts at ``target``."""
    for volume in SERVICES[service].get("volumes", []):
        source, mount_target = volume.split(":")[:2]
        if mount_target == target:
            return ROOT / str(source)
    raise AssertionError(f"{service} mounts nothing at {target}")


def test_compose_has_the_production_services() -> None:
    assert set(SERVICES) == {
        "postgresql",
        "temporal-schema",
        "temporal",
        "temporal-namespace",
        "temporal-ui",
        "worker",
        "api",
        "proxy",
    }
    assert SERVICES["postgresql"]["image"].startswith("postgres:")
    assert SERVICES["temporal"]["image"].startswith("temporalio/server:")
    for job in JOBS:
        assert SERVICES[job]["image"].startswith("temporalio/admin-tools:")
    assert SERVICES["temporal-ui"]["image"].startswith("temporalio/ui:")
    assert SERVICES["proxy"]["image"].startswith("nginx:")
    for name in OUR_SERVICES:
        assert SERVICES[name]["build"]["context"] == "."


def test_compose_pins_every_image() -> None:
    for name, service in SERVICES.items():
        if name in OUR_SERVICES:
            continue
        repository, _, tag = service["image"].partition(":")
        assert tag, f"{name}: {repository} has no tag"
        assert tag != "latest", name
        if repository.startswith("temporalio/"):
            assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name}: pin an exact release"
    # The schema the jobs write is the one the server expects.
    server_tag = SERVICES["temporal"]["image"].split(":")[1]
    for job in JOBS:
        assert SERVICES[job]["image"].split(":")[1] == server_tag
    assert "auto-setup" not in (ROOT / "docker-compose.yml").read_text()


def test_compose_starts_in_order() -> None:
    done = "service_completed_successfully"
    assert depends_on("temporal-schema") == {"postgresql": "service_healthy"}
    assert depends_on("temporal") == {"temporal-schema": done}
    assert depends_on("temporal-namespace") == {"temporal": "service_healthy"}
    for name in (*OUR_SERVICES, "temporal-ui"):
        assert depends_on(name) == {"temporal-namespace": done}, name
    assert depends_on("proxy") == {"api": "service_healthy"}
    for job in JOBS:
        # A job that exited 0 must stay exited: "always"/"unless-stopped" would rerun it forever.
        assert SERVICES[job]["restart"].startswith(("no", "on-failure")), job


@pytest.mark.parametrize("service", ["postgresql", "temporal", "worker", "api", "proxy"])
def test_compose_long_running_services_have_health_checks(service: str) -> None:
    check = SERVICES[service]["healthcheck"]
    assert check["test"]
    assert check["interval"]


def test_compose_schema_job_sets_up_both_databases() -> None:
    job = SERVICES["temporal-schema"]
    script_path = job["entrypoint"][-1]
    script = mounted_file("temporal-schema", script_path).read_text()
    databases = dict(re.findall(r'"(\w+):(\w+)"', script))
    assert databases == {"temporal": "temporal", "temporal_visibility": "visibility"}
    for step in ("create", "setup-schema -v 0.0", "update-schema -d"):
        assert f'--db "$database" {step}' in script, step
    assert "/etc/temporal/schema/postgresql/v12" in script
    # The job connects to the database the server uses, with the same credentials.
    job_env, server_env = environment("temporal-schema"), environment("temporal")
    for name in ("DB", "DB_PORT", "POSTGRES_SEEDS", "POSTGRES_USER", "POSTGRES_PWD"):
        assert job_env[name] == server_env[name], name
    assert job_env["SQL_PASSWORD"] == job_env["POSTGRES_PWD"]


def test_compose_temporal_persists_in_postgresql() -> None:
    env = environment("temporal")
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgresql"
    assert env["POSTGRES_USER"] == environment("postgresql")["POSTGRES_USER"]
    assert env["POSTGRES_PWD"] == environment("postgresql")["POSTGRES_PASSWORD"]
    assert env["BIND_ON_IP"] == "0.0.0.0"
    # Set explicitly: the shard count can never change once the cluster exists.
    assert int(compose_default(env["NUM_HISTORY_SHARDS"])) >= 128


def test_compose_dynamic_config_is_for_production() -> None:
    target = environment("temporal")["DYNAMIC_CONFIG_FILE_PATH"]
    config = yaml.safe_load(mounted_file("temporal", target).read_text())
    for key, values in config.items():
        assert isinstance(values, list), key
        assert all("value" in entry for entry in values), key
    # Settings that exist for Temporal's own tests stay out.
    assert "system.forceSearchAttributesCacheRefreshOnRead" not in config
    assert config["system.enableActivityEagerExecution"][0]["value"] is True
    assert config["frontend.enableUpdateWorkflowExecution"][0]["value"] is True
    # The PostgreSQL visibility schema stores workflow ids in varchar(255).
    assert config["limit.maxIDLength"][0]["value"] <= 255


def test_compose_registers_the_namespace_and_every_search_attribute() -> None:
    job = SERVICES["temporal-namespace"]
    script = mounted_file("temporal-namespace", job["entrypoint"][-1]).read_text()
    assert "temporal operator namespace create" in script
    registered = dict(re.findall(r"^register (\w+) (\w+)$", script, re.MULTILINE))
    assert registered == {
        key.name: SEARCH_ATTRIBUTE_CLI_TYPES[key.indexed_value_type]
        for key in search_attributes.ALL
    }
    env = environment("temporal-namespace")
    assert env["TEMPORAL_ADDRESS"] == environment("worker")["TEMPORAL_ADDRESS"]
    assert env["TEMPORAL_NAMESPACE"] == environment("worker")["TEMPORAL_NAMESPACE"]


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_compose_sets_only_real_settings(service: str) -> None:
    ours = {name for name in environment(service) if name.startswith(SETTINGS_PREFIXES)}
    assert ours
    assert ours <= known_variables(), ours - known_variables()


def test_every_secret_has_an_owner() -> None:
    secrets = {
        name
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    assert secrets == set(SECRET_OWNERS)


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_compose_gives_each_service_only_its_own_settings(service: str) -> None:
    names = set(environment(service))
    other_side = WORKER_ONLY if service == "api" else API_ONLY
    secrets_elsewhere = {f for f, owners in SECRET_OWNERS.items() if service not in owners}
    for field in other_side | secrets_elsewhere:
        assert not names & aliases_of(field), f"{service} must not get {field}"


def test_compose_keeps_authentication_on() -> None:
    value = str(environment("api").get("COUNTERSIGN_AUTH_DISABLED", "false")).lower()
    assert value not in TRUE_WORDS


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_compose_points_at_the_temporal_service(service: str) -> None:
    host, port = environment(service)["TEMPORAL_ADDRESS"].split(":")
    assert host == "temporal"
    assert SERVICES["temporal"]["ports"][0].endswith(f":{port}:{port}")


def test_compose_worker_scales() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    port = environment("worker")["COUNTERSIGN_WORKER_METRICS_PORT"]
    assert worker["expose"] == [port]
    assert f"127.0.0.1:{port}/metrics" in healthcheck_command("worker")
    assert worker["command"] == ["python", "-m", "worker"]


def test_compose_worker_drains_before_it_is_killed() -> None:
    grace = SERVICES["worker"]["stop_grace_period"]
    assert grace.endswith("s")
    assert float(grace[:-1]) > GRACEFUL_SHUTDOWN.total_seconds()


def test_compose_api_scales_behind_the_proxy() -> None:
    api = SERVICES["api"]
    port = Settings.model_fields["api_port"].default
    assert port == 7777
    # No host port and no name: `--scale api=N` starts N replicas side by side.
    assert "ports" not in api
    assert "container_name" not in api
    assert api["expose"] == [str(port)]
    assert str(port) == environment("api")["COUNTERSIGN_API_PORT"]
    assert environment("api")["COUNTERSIGN_API_HOST"] == "0.0.0.0"
    assert f"127.0.0.1:{port}/ready" in healthcheck_command("api")
    # The proxy is the only way in, and publishes the API's port.
    assert SERVICES["proxy"]["ports"] == [f"{port}:{port}"]
    # uvicorn believes the proxy's X-Forwarded-For, so rate limits see clients.
    assert environment("api")["FORWARDED_ALLOW_IPS"] == "*"


def test_compose_proxy_spreads_requests_over_every_replica() -> None:
    conf = mounted_file("proxy", "/etc/nginx/nginx.conf").read_text()
    port = environment("api")["COUNTERSIGN_API_PORT"]
    [upstream] = re.findall(r"upstream (\w+) \{(.*?)\}", conf, re.DOTALL)
    name, body = upstream
    # `resolve` with Docker's DNS: replicas added by --scale join without a restart.
    assert re.search(rf"^\s*server api:{port} resolve\b", body, re.MULTILINE)
    assert re.search(r"^\s*zone \w+", body, re.MULTILINE)
    assert re.search(r"^\s*resolver 127\.0\.0\.11 valid=\d+s", conf, re.MULTILINE)
    assert re.search(rf"^\s*listen {port};", conf, re.MULTILINE)
    assert f"proxy_pass http://{name};" in conf
    # Clients cannot prepend an address of their choosing.
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in conf
    # Answers held for the wait budget and event streams pass unbuffered, uncut.
    assert "proxy_buffering off;" in conf
    [read_timeout] = re.findall(r"proxy_read_timeout (\d+)([smh]);", conf)
    seconds = int(read_timeout[0]) * {"s": 1, "m": 60, "h": 3600}[read_timeout[1]]
    assert seconds > Settings.model_fields["wait_budget"].default.total_seconds()


def test_compose_temporal_ui_is_read_only_by_default() -> None:
    env = environment("temporal-ui")
    assert compose_default(env["TEMPORAL_DISABLE_WRITE_ACTIONS"]) == "true"
    # ... and .env.example documents the switch.
    assert "TEMPORAL_UI_DISABLE_WRITE_ACTIONS" in env_example()


def test_compose_temporal_ui_and_grpc_stay_on_localhost() -> None:
    # Reaching them means deciding by signal without the API's authentication.
    for service in ("temporal", "temporal-ui"):
        for mapping in SERVICES[service]["ports"]:
            assert mapping.startswith("127.0.0.1:")


def test_env_example_names_real_variables() -> None:
    compose_text = (ROOT / "docker-compose.yml").read_text()
    for name in env_example():
        if "${" + name in compose_text:
            continue  # a variable of the compose file itself
        assert name in known_variables(), f"{name} is read by nothing"
        assert re.search(rf"^\s+{name}:", compose_text, re.MULTILINE), (
            f"{name} is documented but no service receives it"
        )


def test_env_example_values_are_valid_settings() -> None:
    # A value ending in "..." shows a format, not a value to validate.
    values = {
        k: v for k, v in env_example().items() if k in settings_aliases() and not v.endswith("...")
    }
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


def test_dockerfile_copies_every_package_the_install_needs() -> None:
    # pyproject's package list and the image's sources must agree, or the
    # image installs without a package (the console script or a module fails).
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.MULTILINE))
    pyproject = (ROOT / "pyproject.toml").read_text()
    [include] = re.findall(r"^include = \[(.*)\]$", pyproject, re.MULTILINE)
    packages = {p.strip().strip('"').rstrip("*") for p in include.split(",")}
    # The development stack is not part of the image.
    assert packages - {"devstack"} <= copied
    assert copied <= packages
    # Every source the build copies exists, and .dockerignore does not hide it.
    sources = re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE)
    ignored = set((ROOT / ".dockerignore").read_text().split())
    for name in (n for line in sources for n in line.split()):
        assert (ROOT / name).exists(), name
        assert name not in ignored, name


def test_api_keys_volume_is_writable_by_the_image_user() -> None:
    # A fresh named volume takes the ownership of the image's directory.
    dockerfile = (ROOT / "Dockerfile").read_text()
    keys_file = environment("api")["COUNTERSIGN_API_KEYS_FILE"]
    keys_dir = str(Path(keys_file).parent)
    assert f"install -d -o countersign -g countersign {keys_dir}" in dockerfile
    assert f"api-keys:{keys_dir}" in SERVICES["api"]["volumes"]


def test_readme_registers_every_search_attribute_on_temporal_cloud() -> None:
    # Cloud takes tcld (or its UI), not `temporal operator`; the command must stay complete.
    readme = (ROOT / "README.md").read_text()
    pattern = r"```bash\n(tcld namespace search-attributes add.*?)```"
    [block] = re.findall(pattern, readme, re.DOTALL)
    registered = dict(re.findall(r"--search-attribute (\w+)=(\w+)", block))
    assert registered == {
        key.name: SEARCH_ATTRIBUTE_CLI_TYPES[key.indexed_value_type]
        for key in search_attributes.ALL
    }


async def test_namespace_job_registers_everything_on_a_real_server_and_reruns_cleanly() -> None:
    # The job's script, run with the same `temporal` CLI release that the
    # admin-tools image carries, against a dev server of this test's own.
    job = SERVICES["temporal-namespace"]
    script = mounted_file("temporal-namespace", job["entrypoint"][-1])
    cli = Path(temporal_cli())
    namespace = "countersign-job"
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(cli), port=free_port()
    ) as server:
        env = {
            "PATH": f"{cli.parent}:/usr/bin:/bin",
            "HOME": str(ROOT),
            "TEMPORAL_ADDRESS": server.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": namespace,
            "TEMPORAL_NAMESPACE_RETENTION": compose_default(
                job["environment"]["TEMPORAL_NAMESPACE_RETENTION"]
            ),
        }
        for run in ("first", "again"):
            done = await asyncio.to_thread(
                subprocess.run,
                ["/bin/sh", str(script)],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, f"{run}: {done.stdout}\n{done.stderr}"
        assert "already exists" in done.stdout
        listed = await server.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        assert {key.name for key in search_attributes.ALL} <= set(listed.custom_attributes)
