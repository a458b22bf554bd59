"""Fixtures of the workflow tests: workers with the test agents, the time-skipping
server, and the worker as a real subprocess that a test can kill.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from countersign import search_attributes as sa
from countersign.settings import Settings
from tests.conftest import make_settings, test_server_binary
from tests.scripted_openai import ScriptedModel
from tests.workflows.helpers import TEST_AGENT_MODULES, Worker, WorkerProcess, running_worker

WorkerFactory = Callable[..., AbstractAsyncContextManager[Worker]]
SettingsFactory = Callable[..., Settings]
ProcessFactory = Callable[[], WorkerProcess]


@pytest.fixture
def test_settings(model: ScriptedModel, tmp_path: Path) -> SettingsFactory:
    """Settings for this test: scripted model, own demo DB, own task queue, test agents."""
    task_queue = f"tq-{uuid.uuid4()}"

    def build(**overrides: object) -> Settings:
        values: dict[str, object] = {"agent_modules": TEST_AGENT_MODULES, **overrides}
        return make_settings(model, tmp_path, task_queue, **values)

    return build


@pytest.fixture
def start_worker(client: Client, test_settings: SettingsFactory) -> WorkerFactory:
    """Start an in-process worker with settings overrides: ``async with start_worker(...)``."""

    def start(**overrides: object) -> AbstractAsyncContextManager[Worker]:
        return running_worker(client, test_settings(**overrides))

    return start


@pytest.fixture
async def worker(start_worker: WorkerFactory) -> AsyncIterator[Worker]:
    """A worker serving the built-in agents and the test agents (overrides the root one)."""
    async with start_worker() as running:
        yield running


@pytest.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, for TTLs of days (started once per session)."""
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_binary(),
        data_converter=pydantic_data_converter,
    ) as environment:
        # The test server knows no custom search attributes until told, and
        # start_run sets them as the product does.
        await environment.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=environment.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in sa.ALL
                },
            )
        )
        yield environment


@pytest.fixture
async def ts_worker(
    ts_env: WorkflowEnvironment, test_settings: SettingsFactory
) -> AsyncIterator[Worker]:
    """A worker on the time-skipping server."""
    async with running_worker(ts_env.client, test_settings()) as running:
        yield running


@pytest.fixture
def worker_processes(
    env: WorkflowEnvironment, test_settings: SettingsFactory, tmp_path: Path
) -> Iterator[ProcessFactory]:
    """Make ``python worker.py`` subprocesses on this test's task queue and demo DB.

    Each is stopped at the end of the test if the test left it running.
    """
    settings = test_settings()
    started: list[WorkerProcess] = []
    env_vars = {
        "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "COUNTERSIGN_TASK_QUEUE": settings.temporal_task_queue,
        "COUNTERSIGN_DEMO_DB": str(settings.demo_db_path),
        "COUNTERSIGN_AGENT_MODULES": ",".join(TEST_AGENT_MODULES),
        "COUNTERSIGN_MODEL": "openai",
        "OPENAI_BASE_URL": settings.openai_base_url or "",
        "OPENAI_API_KEY": "test",
        "OPENAI_MODEL": settings.openai_model,
        "COUNTERSIGN_TOOL_HEARTBEAT_TIMEOUT": "PT1S",
        "COUNTERSIGN_LOG_LEVEL": "INFO",
    }

    def make() -> WorkerProcess:
        process = WorkerProcess(env_vars, tmp_path / f"worker-{len(started)}.log")
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()
