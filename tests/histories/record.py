"""Record the workflow histories that ``tests/workflows/test_replay*.py`` replay.

Each scenario is a representative run (approve, reject, expire, two pauses,
four eyes, a cancelled batch, a continue-as-new, webhooks in flight...). Its
history, replayed against the current ``AgentRunWorkflow``, fails when a code
change would break runs already in flight. Record from a clean checkout of a
commit (a ``git worktree`` of it), never from a shared working tree, so the
file name says exactly which code made it (see ``docs/histories.md``)::

    .venv/bin/python -m tests.histories.record approve    # some scenarios
    .venv/bin/python -m tests.histories.record --out DIR  # every scenario

It starts its own Temporal dev servers, scripted model and worker, and writes
``<scenario>.<commit>.json`` (and ``<scenario>.<commit>.run<n>.json`` for each
run after a continue-as-new). It never overwrites a file: a history once
committed is the record of how runs of that shape ran.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory

from countersign.models import RunStatus
from tests.conftest import make_settings, start_dev_server
from tests.histories.scenarios import SCENARIOS, Recording
from tests.scripted_openai import ScriptedModel, ScriptedServer
from tests.workflows.helpers import TEST_AGENT_MODULES, running_worker

HISTORY_DIR = Path(__file__).parent
REPO_ROOT = HISTORY_DIR.parents[1]
# The code whose behaviour a history records: a recording from a tree with
# uncommitted changes here could not be traced to a commit.
RECORDED_CODE = ("workflows", "countersign", "activities", "worker.py")
# A dev server that suggests continue-as-new after this many history events, so
# a short scripted run crosses one (the production default is thousands).
logger = logging.getLogger(__name__)


def scenario_of(path: Path) -> str:
    """The scenario a history file records: its name up to the first dot."""
    return path.name.split(".", 1)[0]


def history_files(directory: Path = HISTORY_DIR) -> list[Path]:
    """Every recorded history, in a stable order."""
    return sorted(directory.glob("*.json"))


def recorded_commit(root: Path = REPO_ROOT) -> str:
    """The short commit of the code being recorded.

    Raises:
        RuntimeError: The recorded code has uncommitted changes.
    """
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", *RECORDED_CODE],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if dirty.strip():
        raise RuntimeError(
            "uncommitted changes in the recorded code; record from a worktree of a commit"
            f" (git worktree add /tmp/rec <commit>):\n{dirty}"
        )
    return subprocess.run(
        ["git", "rev-parse", "--short=7", "HEAD"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def history_names(name: str, commit: str, runs: int) -> list[str]:
    """File names for the ``runs`` runs of one recording, first run first."""
    return [
        f"{name}.{commit}.json" if n == 1 else f"{name}.{commit}.run{n}.json"
        for n in range(1, runs + 1)
    ]


async def run_chain(client: Client, workflow_id: str, first_run_id: str) -> list[WorkflowHistory]:
    """The histories of a workflow's runs, following each continue-as-new."""
    histories: list[WorkflowHistory] = []
    run_id: str | None = first_run_id
    while run_id is not None:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        continued = last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if continued
            else None
        )
    return histories


async def record_scenario(name: str, recording: Recording) -> list[WorkflowHistory]:
    """Run one scenario to its end and return the histories of its runs."""
    scenario = SCENARIOS[name]
    handle = await scenario.run(recording)
    status = (await recording.client.get_workflow_handle(handle.id).describe()).status
    if status is WorkflowExecutionStatus.COMPLETED:
        view = await handle.result()
        if (view.status is RunStatus.ERROR) is not scenario.ends_in_error:
            raise RuntimeError(f"scenario {name} ended {view.status}: {view.error}")
    elif status is not WorkflowExecutionStatus.CANCELED:
        raise RuntimeError(f"scenario {name} ended {status}")
    assert handle.result_run_id is not None
    chain = await run_chain(recording.client, handle.id, handle.result_run_id)
    if scenario.continues_as_new and len(chain) < 2:
        raise RuntimeError(f"scenario {name} did not continue as new")
    return chain


@contextlib.asynccontextmanager
async def recording_stack(small_history: bool) -> AsyncIterator[Recording]:
    """A dev server, a scripted model and a worker to record against."""
    model = ScriptedModel()
    server = ScriptedServer(model)
    await server.start()
    try:
        async with await start_dev_server(
            suggest_continue_as_new_at=12 if small_history else None
        ) as env:
            with tempfile.TemporaryDirectory() as tmp:
                settings = make_settings(
                    model, Path(tmp), f"record-{uuid.uuid4()}", agent_modules=TEST_AGENT_MODULES
                )
                async with running_worker(env.client, settings) as worker:
                    yield Recording(env.client, worker, model)
    finally:
        await server.stop()


async def record(names: Sequence[str], out: Path = HISTORY_DIR) -> list[Path]:
    """Record ``names`` into ``out``; refuse to overwrite any history.

    Raises:
        RuntimeError: The recorded code has uncommitted changes.
        FileExistsError: A scenario was already recorded with this commit.
    """
    commit = recorded_commit()
    for name in names:
        # Checked before anything runs, and again below for the later runs of a chain.
        if (first := out / history_names(name, commit, 1)[0]).exists():
            raise FileExistsError(f"{first} exists: histories are never re-recorded")
    written: list[Path] = []
    for small_history in (False, True):
        group = [n for n in names if SCENARIOS[n].continues_as_new is small_history]
        if not group:
            continue
        async with recording_stack(small_history) as recording:
            for name in group:
                chain = await record_scenario(name, recording)
                paths = [out / n for n in history_names(name, commit, len(chain))]
                existing = [p for p in paths if p.exists()]
                if existing:
                    raise FileExistsError(f"{existing[0]} exists: histories are never re-recorded")
                for path, history in zip(paths, chain, strict=True):
                    path.write_text(history.to_json() + "\n")
                    logger.info("recorded %s", path)
                    written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: record the named scenarios, or all of them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)}")
    parser.add_argument("--out", type=Path, default=HISTORY_DIR, help="where to write")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    asyncio.run(record(args.scenarios or list(SCENARIOS), args.out))


if __name__ == "__main__":
    main()
