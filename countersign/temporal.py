"""Connecting to Temporal the way Temporal's own tools do, with our data converter.

The connection comes from the Temporal SDK's environment configuration
(``temporalio.envconfig``), so an environment or a ``temporal.toml`` that works
for the ``temporal`` CLI works here unchanged:

- a profile from the configuration file (``TEMPORAL_CONFIG_FILE``, default
  ``~/.config/temporalio/temporal.toml``), chosen by ``TEMPORAL_PROFILE``
  (default ``default``);
- overridden by the environment: ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``,
  ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS``, ``TEMPORAL_TLS_CLIENT_CERT_PATH``,
  ``TEMPORAL_TLS_CLIENT_KEY_PATH``, ``TEMPORAL_TLS_SERVER_CA_CERT_PATH``,
  ``TEMPORAL_TLS_SERVER_NAME``, ``TEMPORAL_GRPC_META_*``...;
- then by an address, namespace or API key given to :class:`Settings`
  explicitly (tests, embedding programs).

The project's earlier names ``TEMPORAL_TLS_CERT``, ``TEMPORAL_TLS_KEY`` and
``TEMPORAL_TLS_CA`` still work for one release, each with a warning naming its
replacement.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile, ClientConnectConfig

from countersign.settings import Settings

logger = logging.getLogger(__name__)

#: Deprecated names (read until the next release) and Temporal's names for them.
DEPRECATED_ENV = {
    "TEMPORAL_TLS_CERT": "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_KEY": "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_CA": "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
}


class TemporalConfigError(Exception):
    """The Temporal connection settings cannot be used (no such profile, bad file)."""


def _environment(environ: Mapping[str, str]) -> dict[str, str]:
    env = dict(environ)
    for old, new in DEPRECATED_ENV.items():
        if old not in env:
            continue
        if new in env:
            logger.warning("%s is ignored: %s is set too (and is the name to keep)", old, new)
        else:
            env[new] = env[old]
            logger.warning(
                "%s is deprecated and will be removed in the next release: "
                "rename it to %s, Temporal's own name",
                old,
                new,
            )
    return env


def client_profile(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> ClientConfigProfile:
    """The Temporal profile to connect with: file, then environment, then settings.

    Args:
        settings: An address, namespace or API key set on them explicitly
            wins; ``temporal_profile`` and ``temporal_config_file``, when set,
            choose the profile and the file.
        environ: The environment to read (the process's when ``None``).

    Raises:
        TemporalConfigError: When the profile does not exist or the file is
            not valid TOML.
    """
    env = _environment(os.environ if environ is None else environ)
    try:
        profile = ClientConfigProfile.load(
            profile=settings.temporal_profile,
            config_source=settings.temporal_config_file,
            override_env_vars=env,
        )
    except RuntimeError as err:
        raise TemporalConfigError(f"Temporal client configuration: {err}") from err
    # Settings already hold the profile's address and namespace unless they
    # were given explicitly (see Settings); either way theirs are the ones.
    api_key = settings.temporal_api_key
    return dataclasses.replace(
        profile,
        address=settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=api_key.get_secret_value() if api_key is not None else profile.api_key,
    )


def connect_config(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> ClientConnectConfig:
    """Keyword arguments for ``Client.connect`` (address, namespace, API key, TLS).

    Raises:
        TemporalConfigError: See :func:`client_profile`; also when a TLS file
            named in the configuration cannot be read.
    """
    try:
        return client_profile(settings, environ).to_client_connect_config()
    except OSError as err:
        raise TemporalConfigError(f"Temporal TLS file: {err}") from err


def describe(config: ClientConnectConfig) -> str:
    """``address (namespace …)`` for log lines; never the API key."""
    tls = " with TLS" if config.get("tls") else ""
    return f"{config.get('target_host')} (namespace {config.get('namespace')}){tls}"


async def connect(settings: Settings) -> Client:
    """A client for the configured Temporal service, with the pydantic data converter.

    Raises:
        TemporalConfigError: See :func:`connect_config`.
    """
    config = connect_config(settings)
    logger.info("connecting to Temporal at %s", describe(config))
    return await Client.connect(**config, data_converter=pydantic_data_converter)
