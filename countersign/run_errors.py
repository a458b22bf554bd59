"""What can happen to a run, as the run client reports it.

Temporal's errors become these, which say what happened to the run rather than
which RPC failed; an unreachable Temporal stays an ``RPCError`` (see
:func:`is_connection_failure`). The API maps each to an HTTP answer in one
table (``api/errors.py``).
"""

from __future__ import annotations

from temporalio.service import RPCError, RPCStatusCode

from countersign.models import ErrorCode

#: RPC status codes that mean "the server is not there", not "your request is wrong".
UNAVAILABLE_RPC = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
)


class RunNotFoundError(Exception):
    """No run has this id."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} does not exist")
        self.run_id = run_id


class WorkerUnavailableError(Exception):
    """Temporal answered, but no worker served the run in time; the run is safe."""


class NotAcceptedError(WorkerUnavailableError):
    """No worker took an update in time.

    The server keeps an update it admitted and hands it to the run's next
    worker, where the validator still decides; only a restart of the Temporal
    server before then drops it.
    """


class StartNotConfirmedError(Exception):
    """Temporal did not confirm that a new run started.

    Attributes:
        run_id: The run the request tried to start.
        started: ``False`` when Temporal says no such run exists (nothing
            changed: retrying is safe); ``None`` when that could not be asked
            either (read the run before retrying, or a retry may start a second).
    """

    def __init__(self, run_id: str, started: bool | None, cause: BaseException) -> None:
        if started is False:
            text = f"Temporal did not start run {run_id} ({cause}); nothing changed: retry"
        else:
            text = (
                f"Temporal did not confirm that run {run_id} started ({cause}); "
                "read the run before retrying"
            )
        super().__init__(text)
        self.run_id = run_id
        self.started = started


class DecisionRefusedError(Exception):
    """The workflow refused decisions; nothing changed.

    Attributes:
        code: Why, as a stable code.
        message: The workflow's sentence.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RunClosedError(DecisionRefusedError):
    """Decisions sent to a run that closed meanwhile: it is no longer paused.

    The run cannot record the refusal any more, so callers do not try.
    """

    def __init__(self, run_id: str, err: RPCError) -> None:
        super().__init__(ErrorCode.NOT_PAUSED, f"run {run_id} is no longer paused ({err})")


def is_connection_failure(err: BaseException) -> bool:
    """Whether ``err`` says Temporal is unreachable (rather than refusing a request)."""
    if isinstance(err, RPCError):
        return err.status in UNAVAILABLE_RPC
    # A lazy client that cannot connect raises a plain RuntimeError from the core.
    return isinstance(err, RuntimeError) and "client connect" in str(err)
