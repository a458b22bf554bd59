"""The bare-Temporal baseline: start, wait for a signal, run one activity, complete.

Every Countersign figure in ``bench/`` is a ratio against this workflow,
measured in the same run on the same server.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bare_activity")
async def bare_activity(value: str) -> str:
    """An activity that does nothing but return."""
    return value


@workflow.defn
class BareWorkflow:
    """Waits for ``go`` (or answers ``ready``), then runs one activity."""

    def __init__(self) -> None:
        self._go = False

    @workflow.run
    async def run(self) -> str:
        """Wait for the signal, run the activity, complete."""
        await workflow.wait_condition(lambda: self._go)
        result: str = await workflow.execute_activity(
            bare_activity, "done", start_to_close_timeout=timedelta(seconds=10)
        )
        return result

    @workflow.signal
    def go(self) -> None:
        """Let the workflow continue."""
        self._go = True

    @workflow.update
    def ready(self) -> bool:
        """Answers once the workflow is running and waiting (for start-and-wait)."""
        return not self._go
