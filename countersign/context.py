"""What a tool receives besides its arguments."""

from __future__ import annotations

from dataclasses import dataclass

from countersign.demo_db import DemoDatabase


@dataclass(frozen=True)
class ToolDeps:
    """Resources the worker hands to tools (built once per worker)."""

    demo_db: DemoDatabase


@dataclass(frozen=True)
class ToolContext:
    """Passed to a tool that declares a parameter annotated ``ToolContext``.

    The parameter is not part of the tool's schema: the model never sees it.

    Attributes:
        run_id: The agent run.
        tool_call_id: The model's id for this call.
        idempotency_key: ``{run_id}:{tool_call_id}``; a tool with side effects
            must make its effect once per key, because Temporal may run the
            activity again after a crash or a timeout.
        deps: Shared resources, such as the demo database.
    """

    run_id: str
    agent_id: str
    tool_call_id: str
    idempotency_key: str
    deps: ToolDeps
