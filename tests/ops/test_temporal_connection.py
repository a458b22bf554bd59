"""The Temporal connection from ``temporalio.envconfig``: profiles, environment, old names.

Every test starts from an environment without ``TEMPORAL_*`` variables and with
a home directory of its own, so neither the machine's environment nor a
developer's ``~/.config/temporalio/temporal.toml`` leaks in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import TLSConfig

from countersign.settings import Settings
from countersign.temporal import TemporalConfigError, connect, connect_config

REPO = Path(__file__).parents[2]

PROFILES = """
[profile.default]
address = "default.internal:7233"

[profile.staging]
address = "staging.internal:7233"
namespace = "staging-ns"
api_key = "staging-api-key"
"""


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("TEMPORAL_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    return monkeypatch


@pytest.fixture
def profiles(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "temporal.toml"
    path.write_text(PROFILES)
    clean_env.setenv("TEMPORAL_CONFIG_FILE", str(path))
    return path


def tls_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name in ("client.pem", "client.key", "ca.pem"):
        files[name] = tmp_path / name
        files[name].write_bytes(f"-----{name}-----".encode())
    return files


def test_nothing_configured_means_local_default_namespace(clean_env: pytest.MonkeyPatch) -> None:
    config = connect_config(Settings())

    assert config["target_host"] == "localhost:7233"
    assert config["namespace"] == "default"
    assert "tls" not in config
    assert "api_key" not in config


def test_profile_selects_address_namespace_and_api_key(
    clean_env: pytest.MonkeyPatch, profiles: Path
) -> None:
    clean_env.setenv("TEMPORAL_PROFILE", "staging")

    config = connect_config(Settings())

    assert config["target_host"] == "staging.internal:7233"
    assert config["namespace"] == "staging-ns"
    assert config["api_key"] == "staging-api-key"
    # An API key turns TLS on, as Temporal Cloud needs.
    assert config["tls"] is True


def test_settings_name_the_profiles_target_for_logs_and_health(
    clean_env: pytest.MonkeyPatch, profiles: Path
) -> None:
    clean_env.setenv("TEMPORAL_PROFILE", "staging")

    settings = Settings()

    assert (settings.temporal_address, settings.temporal_namespace) == (
        "staging.internal:7233",
        "staging-ns",
    )


def test_default_profile_from_the_users_config_file(clean_env: pytest.MonkeyPatch) -> None:
    user_file = Path(os.environ["XDG_CONFIG_HOME"]) / "temporalio" / "temporal.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text(PROFILES)

    assert connect_config(Settings())["target_host"] == "default.internal:7233"


def test_environment_overrides_the_profile(clean_env: pytest.MonkeyPatch, profiles: Path) -> None:
    clean_env.setenv("TEMPORAL_PROFILE", "staging")
    clean_env.setenv("TEMPORAL_NAMESPACE", "from-env")
    clean_env.setenv("TEMPORAL_API_KEY", "env-api-key")

    config = connect_config(Settings())

    assert config["target_host"] == "staging.internal:7233"
    assert config["namespace"] == "from-env"
    assert config["api_key"] == "env-api-key"


def test_settings_given_explicitly_win(clean_env: pytest.MonkeyPatch, profiles: Path) -> None:
    clean_env.setenv("TEMPORAL_PROFILE", "staging")
    settings = Settings.model_validate({"temporal_address": "127.0.0.1:7234"})

    config = connect_config(settings)

    assert config["target_host"] == "127.0.0.1:7234"
    assert config["namespace"] == "staging-ns"


def test_tls_paths_under_temporals_names(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    files = tls_files(tmp_path)
    clean_env.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(files["client.pem"]))
    clean_env.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(files["client.key"]))
    clean_env.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(files["ca.pem"]))

    tls = connect_config(Settings())["tls"]

    assert isinstance(tls, TLSConfig)
    assert tls.client_cert == b"-----client.pem-----"
    assert tls.client_private_key == b"-----client.key-----"
    assert tls.server_root_ca_cert == b"-----ca.pem-----"


def test_old_tls_names_still_work_and_warn(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = tls_files(tmp_path)
    clean_env.setenv("TEMPORAL_TLS_CERT", str(files["client.pem"]))
    clean_env.setenv("TEMPORAL_TLS_KEY", str(files["client.key"]))
    clean_env.setenv("TEMPORAL_TLS_CA", str(files["ca.pem"]))

    with caplog.at_level(logging.WARNING, logger="countersign.temporal"):
        tls = connect_config(Settings())["tls"]

    assert isinstance(tls, TLSConfig)
    assert tls.client_cert == b"-----client.pem-----"
    assert tls.client_private_key == b"-----client.key-----"
    assert tls.server_root_ca_cert == b"-----ca.pem-----"
    warnings = [r.getMessage() for r in caplog.records]
    for old, new in [
        ("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_CLIENT_CERT_PATH"),
        ("TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CLIENT_KEY_PATH"),
        ("TEMPORAL_TLS_CA", "TEMPORAL_TLS_SERVER_CA_CERT_PATH"),
    ]:
        assert any(w.startswith(f"{old} is deprecated") and new in w for w in warnings)


def test_new_tls_name_wins_over_the_old_one(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = tls_files(tmp_path)
    clean_env.setenv("TEMPORAL_TLS_CERT", str(files["ca.pem"]))
    clean_env.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(files["client.pem"]))

    with caplog.at_level(logging.WARNING, logger="countersign.temporal"):
        tls = connect_config(Settings())["tls"]

    assert isinstance(tls, TLSConfig)
    assert tls.client_cert == b"-----client.pem-----"
    assert "TEMPORAL_TLS_CERT is ignored" in caplog.text


def test_unknown_profile_is_a_clear_error(clean_env: pytest.MonkeyPatch, profiles: Path) -> None:
    clean_env.setenv("TEMPORAL_PROFILE", "prod")

    with pytest.raises(TemporalConfigError, match="Profile 'prod' not found"):
        connect_config(Settings())


def test_missing_tls_file_is_a_clear_error(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(tmp_path / "absent.pem"))

    with pytest.raises(TemporalConfigError, match=r"absent\.pem"):
        connect_config(Settings())


async def test_connects_to_the_server_a_profile_names(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, client: Client
) -> None:
    path = tmp_path / "temporal.toml"
    address = client.service_client.config.target_host
    path.write_text(f'[profile.local]\naddress = "{address}"\nnamespace = "default"\n')
    clean_env.setenv("TEMPORAL_CONFIG_FILE", str(path))
    clean_env.setenv("TEMPORAL_PROFILE", "local")

    connected = await connect(Settings())
    info = await connected.workflow_service.get_system_info(GetSystemInfoRequest())

    assert connected.service_client.config.target_host == address
    assert connected.namespace == "default"
    assert info.server_version


async def worker_that_refuses_to_start() -> tuple[int | None, str]:
    """Run ``python worker.py`` in this environment until it exits; its status and output."""
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "worker.py",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(worker.communicate(), 60)
    return worker.returncode, output.decode()


async def test_worker_refuses_an_unknown_profile_in_one_line(
    clean_env: pytest.MonkeyPatch, profiles: Path
) -> None:
    clean_env.setenv("TEMPORAL_PROFILE", "prod")
    returncode, text = await worker_that_refuses_to_start()

    assert returncode == 2
    assert "worker not started: Temporal client configuration: Profile 'prod'" in text
    assert "Traceback" not in text


async def test_worker_refuses_unsigned_webhooks_at_start(
    clean_env: pytest.MonkeyPatch, client: Client, tmp_path: Path
) -> None:
    clean_env.setenv("TEMPORAL_ADDRESS", client.service_client.config.target_host)
    clean_env.setenv("COUNTERSIGN_TASK_QUEUE", "tq-unsigned-webhooks")
    clean_env.setenv("COUNTERSIGN_DEMO_DB", str(tmp_path / "demo.sqlite3"))
    clean_env.setenv("COUNTERSIGN_WEBHOOK_URLS", "http://127.0.0.1:9/hooks")
    clean_env.delenv("COUNTERSIGN_WEBHOOK_SECRETS", raising=False)
    clean_env.delenv("COUNTERSIGN_WEBHOOK_SECRET", raising=False)
    returncode, text = await worker_that_refuses_to_start()

    assert returncode == 2
    assert "worker not started: COUNTERSIGN_WEBHOOK_URLS is set but" in text
    assert "Traceback" not in text


async def test_worker_refuses_a_malformed_webhook_secret_without_echoing_it(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("COUNTERSIGN_WEBHOOK_SECRETS", "not-a-standard-secret-0123456789")
    returncode, text = await worker_that_refuses_to_start()

    assert returncode == 2
    assert "worker not started: invalid settings" in text
    assert "must be 'whsec_'" in text
    assert "not-a-standard-secret" not in text
    assert "Traceback" not in text
