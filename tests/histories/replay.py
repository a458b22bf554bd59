"""Replay recorded histories, optionally with one ``workflow.patched`` branch removed.

``without_branch`` makes ``workflow.patched(patch_id)`` take one branch always,
which is what the workflow code does once someone deletes the other side of the
``if``. A history that then fails to replay is one that pins the deleted branch.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from pydantic import BaseModel, JsonValue
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import (
    ContinueAsNewInput,
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from workflows.agent_run import AgentRunWorkflow

WORKFLOWS_DIR = Path(__file__).parents[2] / "workflows"
PATCH_FUNCTIONS = frozenset({"patched", "deprecate_patch"})
# The marker name the SDK records for workflow.patched (the core's patch marker).
PATCH_MARKER = "core_patch"


def load(source: Path | WorkflowHistory) -> WorkflowHistory:
    """A history from a recorded file (or one already loaded); a file's workflow id is its name."""
    if isinstance(source, WorkflowHistory):
        return source
    return WorkflowHistory.from_json(source.name, source.read_text())


class ReplayedStateError(Exception):
    """Replay issued the recorded commands but rebuilt a different run."""


class _Outcome(Interceptor):
    """Keeps what the replayed run ended with: its result or continue-as-new input."""

    def __init__(self) -> None:
        self.ended_with: list[object] = []

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        ended_with = self.ended_with

        class Outbound(WorkflowOutboundInterceptor):
            def continue_as_new(self, input: ContinueAsNewInput) -> NoReturn:
                ended_with.append(input.args[0])
                super().continue_as_new(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

            async def execute_workflow(self, input: ExecuteWorkflowInput) -> object:
                result = await super().execute_workflow(input)
                ended_with.append(result)
                return result

        return Inbound


def _recorded_outcome(history: WorkflowHistory) -> Payload | None:
    last = history.events[-1]
    if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        payloads = last.workflow_execution_completed_event_attributes.result.payloads
    elif last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        payloads = last.workflow_execution_continued_as_new_event_attributes.input.payloads
    else:
        return None
    return payloads[0]


def _as_recorded(recorded: Payload, replayed: BaseModel) -> tuple[JsonValue, JsonValue]:
    """Both outcomes as JSON, the recorded one read as the current model reads it.

    Only the fields the recording has are kept: a field the models gained since
    has its default there, and is no difference. A renamed field with an alias
    reads as before.
    """
    (loaded,) = pydantic_data_converter.payload_converter.from_payloads(
        [recorded], [type(replayed)]
    )
    assert isinstance(loaded, BaseModel)
    return loaded.model_dump(mode="json", exclude_unset=True), replayed.model_dump(mode="json")


def _differences(recorded: JsonValue, replayed: JsonValue, where: str = "") -> list[str]:
    """Where ``replayed`` lacks or changes what ``recorded`` has."""
    if isinstance(recorded, dict):
        if not isinstance(replayed, dict):
            return [f"{where or '.'}: {recorded!r} became {replayed!r}"]
        return [
            diff
            for key, value in recorded.items()
            for diff in _differences(value, replayed.get(key, "<missing>"), f"{where}.{key}")
        ]
    if isinstance(recorded, list):
        if not isinstance(replayed, list) or len(replayed) != len(recorded):
            return [f"{where}: {recorded!r} became {replayed!r}"]
        return [
            diff
            for i, (old, new) in enumerate(zip(recorded, replayed, strict=True))
            for diff in _differences(old, new, f"{where}[{i}]")
        ]
    return [] if recorded == replayed else [f"{where}: {recorded!r} became {replayed!r}"]


async def replay_failure(source: Path | WorkflowHistory) -> Exception | None:
    """Replay against the current ``AgentRunWorkflow``; the failure, if any.

    Besides the commands Temporal checks, the run the replay rebuilds must end
    as recorded (its result, or the state it carried into a continue-as-new):
    a patch that changes only state, with no command, is pinned that way too.
    """
    history = load(source)
    outcome = _Outcome()
    replayer = Replayer(
        workflows=[AgentRunWorkflow],
        data_converter=pydantic_data_converter,
        interceptors=[outcome],
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if result.replay_failure is not None:
        return result.replay_failure
    recorded = _recorded_outcome(history)
    if recorded is None:
        return None
    if not outcome.ended_with or not isinstance(outcome.ended_with[-1], BaseModel):
        return ReplayedStateError(
            f"{history.workflow_id}: the replayed run did not end as recorded"
        )
    try:
        before, after = _as_recorded(recorded, outcome.ended_with[-1])
    except (ValueError, RuntimeError) as err:
        return ReplayedStateError(
            f"{history.workflow_id}: the recorded outcome no longer loads: {err}"
        )
    differences = _differences(before, after)
    if differences:
        return ReplayedStateError(f"{history.workflow_id}: " + "; ".join(differences[:5]))
    return None


@contextlib.contextmanager
def without_branch(patch_id: str, *, answer: bool, histories: Iterable[Path]) -> Iterator[None]:
    """While inside, replays of ``histories`` run as if one branch of ``patch_id`` were deleted.

    ``answer=True``: the old branch is gone, done the supported way, with
    ``workflow.deprecate_patch`` in place of ``patched``, so a history recorded
    with the patch still matches its marker and only one recorded before the
    patch can fail. ``answer=False``: the new branch is gone but the marker is
    still recorded, so only a history whose run took the new branch can fail.

    The workflow code runs in the sandbox but reads ``workflow.patched`` from
    the ``temporalio`` module, which the sandbox passes through, so replacing
    the attribute here reaches it. Only the replays of ``histories`` (whose
    workflow ids are their file names, see :func:`load`) are affected, so a
    worker of another test running in this process is not.
    """
    original = workflow.patched
    replayed = {path.name for path in histories}

    def patched(id: str, *, event_groups: Sequence[workflow.EventGroup] | None = None) -> bool:
        if id != patch_id or workflow.info().workflow_id not in replayed:
            return original(id, event_groups=event_groups)
        if answer:
            workflow.deprecate_patch(id, event_groups=event_groups)
        else:
            original(id, event_groups=event_groups)
        return answer

    workflow.patched = patched
    try:
        yield
    finally:
        workflow.patched = original


def _constant(module: str, node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        value = getattr(importlib.import_module(module), node.id, None)
        if isinstance(value, str):
            return value
    raise ValueError(f"{module}: a patch id that is not a string constant: {ast.unparse(node)}")


def patch_ids_in_code(directory: Path = WORKFLOWS_DIR) -> set[str]:
    """Every id passed to ``workflow.patched``/``deprecate_patch`` in the workflow code.

    Raises:
        ValueError: A patch id is computed, so it cannot be checked here.
    """
    found: set[str] = set()
    for path in sorted(directory.rglob("*.py")):
        module = ".".join(path.relative_to(directory.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in PATCH_FUNCTIONS:
                found.add(_constant(module, node.args[0]))
    return found


def patch_ids_in_history(source: Path | WorkflowHistory) -> set[str]:
    """The patch ids a history recorded (the code that ran it took their new branch)."""
    converter = pydantic_data_converter.payload_converter
    ids: set[str] = set()
    for event in load(source).events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        marker = event.marker_recorded_event_attributes
        if marker.marker_name == PATCH_MARKER:
            (data,) = converter.from_payloads(list(marker.details["patch-data"].payloads))
            ids.add(str(data["id"]))
    return ids
