"""The client side of a run's workflow: start it, decide, wait, read, record refusals.

The API, the tests and the benchmark all go through :class:`RunClient`, so they
exercise the same calls the product makes. It calls the workflow's handlers by
the names in :mod:`countersign.models` (``RUN_WORKFLOW``, ``DECIDE_UPDATE``...)
with ``result_type=`` and never imports the workflow module, which imports this
package. Temporal's errors become the exceptions of
:mod:`countersign.run_errors`; the input of a new run is built by
:mod:`countersign.run_input`. Both are re-exported here for callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import (
    QueryRejectCondition,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from countersign.models import (
    AUDIT_QUERY,
    DECIDE_UPDATE,
    RECORD_REFUSAL_SIGNAL,
    RUN_WORKFLOW,
    STATE_QUERY,
    WAIT_SETTLED_UPDATE,
    AuditEvent,
    DecideRequest,
    DecideResult,
    ErrorCode,
    RefusedAttempt,
    RunInput,
    RunStatus,
    RunView,
)
from countersign.run_errors import UNAVAILABLE_RPC as UNAVAILABLE_RPC
from countersign.run_errors import DecisionRefusedError as DecisionRefusedError
from countersign.run_errors import NotAcceptedError as NotAcceptedError
from countersign.run_errors import RunClosedError as RunClosedError
from countersign.run_errors import RunNotFoundError as RunNotFoundError
from countersign.run_errors import StartNotConfirmedError as StartNotConfirmedError
from countersign.run_errors import WorkerUnavailableError as WorkerUnavailableError
from countersign.run_errors import is_connection_failure as is_connection_failure
from countersign.run_input import WORKFLOW_ID_PREFIX as WORKFLOW_ID_PREFIX
from countersign.run_input import build_run_input as build_run_input
from countersign.run_input import new_run_id as new_run_id
from countersign.run_input import run_id_of as run_id_of
from countersign.run_input import run_options as run_options
from countersign.run_input import search_attributes_of
from countersign.run_input import workflow_id as workflow_id

logger = logging.getLogger("countersign.client")

#: How long a call waits for a worker to take an update when it has no wait budget.
ACCEPT_TIMEOUT = timedelta(seconds=30)
#: How long reading an open run waits for a worker to answer its query.
QUERY_TIMEOUT = timedelta(seconds=5)
#: How long asking whether Temporal is reachable may take, after a call got no answer.
PROBE_TIMEOUT = timedelta(seconds=1)
#: How many executions a read follows when each it reaches has continued as new.
CONTINUED_AS_NEW_FOLLOWS = 5

RunHandle = WorkflowHandle[Any, RunView]
T = TypeVar("T")


class RunClient:
    """One run's workflow handlers, called by name.

    Args:
        handle: The run's workflow handle; see :meth:`of` and :meth:`start`.
        client: The Temporal client the handle came from, to reach the run's
            current execution when ``handle`` names one that continued as new.
    """

    def __init__(self, handle: RunHandle, client: Client | None = None) -> None:
        self.handle = handle
        self.client = client

    @classmethod
    def of(cls, client: Client, run_id: str) -> RunClient:
        """The client of an existing run, addressing its current execution."""
        return cls(client.get_workflow_handle(workflow_id(run_id), result_type=RunView), client)

    @property
    def run_id(self) -> str:
        """The run's id."""
        return run_id_of(self.handle.id)

    @classmethod
    async def start(
        cls, client: Client, run: RunInput, *, task_queue: str, wait: timedelta | None
    ) -> tuple[RunClient, RunView | None]:
        """Start a run and wait, without polling, until it settles or ``wait`` passes.

        It uses update-with-start: one request starts the workflow and attaches
        the ``wait_settled`` update, whose result arrives when the run pauses,
        completes or fails.

        Returns:
            The run's client and the settled run, or ``None`` when the wait
            budget ran out first or there is none (``wait`` ``None`` or zero:
            the start is confirmed, not waited on); the run goes on.

        Raises:
            NotAcceptedError: The workflow is started but no worker took it
                within ``wait`` (or ``ACCEPT_TIMEOUT``); it runs when a worker polls.
        """
        operation: WithStartWorkflowOperation[Any, RunView] = WithStartWorkflowOperation(
            RUN_WORKFLOW,
            run,
            id=workflow_id(run.run_id),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            # Run ids are never reused: a start repeated after the run closed
            # (a retried request) must not run its work a second time.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            result_type=RunView,
            search_attributes=search_attributes_of(run),
            static_summary=f"{run.agent_id}: {run.message[:200]}",
        )
        deadline = _deadline(wait)
        try:
            async with _within(wait or ACCEPT_TIMEOUT):
                update = await client.start_update_with_start_workflow(
                    WAIT_SETTLED_UPDATE,
                    0,
                    start_workflow_operation=operation,
                    # With a wait budget, ask for the settled run in the same
                    # call: the server answers when the update completes, so
                    # there is no second round trip to poll for the result.
                    wait_for_stage=WorkflowUpdateStage.COMPLETED
                    if wait
                    else WorkflowUpdateStage.ACCEPTED,
                    result_type=RunView,
                    rpc_timeout=wait or ACCEPT_TIMEOUT,
                )
        except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError) as err:
            await _read_handle_future(operation)
            if _cancelling():
                raise
            # A timeout says nothing about the start: right after a server
            # restart the request can time out before the run exists. Answer
            # "started" only for a run Temporal knows.
            exists = await _exists(client, run.run_id)
            if exists is not True:
                raise StartNotConfirmedError(run.run_id, exists, err) from None
            raise NotAcceptedError(
                f"run {run.run_id} is started but did not settle within "
                f"{(wait or ACCEPT_TIMEOUT).total_seconds():g} s (no worker took it yet, or "
                "it is still working); it goes on"
            ) from None
        except WorkflowAlreadyStartedError:
            await _read_handle_future(operation)
            # Only this run's own earlier start can hold its id (a request
            # retried after the server started it): the run is there.
            raise NotAcceptedError(f"run {run.run_id} is started already") from None
        except RPCError as err:
            await _read_handle_future(operation)
            # The start may have happened before the error ("workflow is busy",
            # a connection cut after the write): a caller who retried on our
            # error would start the same work twice, so find out first.
            exists = await _exists(client, run.run_id)
            if exists is True:
                raise NotAcceptedError(
                    f"run {run.run_id} is started; Temporal answered {err.message!r} "
                    "before a worker took it"
                ) from None
            raise StartNotConfirmedError(run.run_id, exists, err) from None
        except BaseException:
            await _read_handle_future(operation)
            raise
        started = cls(await operation.workflow_handle(), client)
        if not wait:
            return started, None
        view = await _result_within(update.result(), _remaining(deadline))
        return started, await cls.of(client, run.run_id)._follow(view, deadline)

    async def decide(
        self, request: DecideRequest, *, wait: timedelta | None
    ) -> DecideResult | None:
        """Send decisions through the ``decide`` update.

        Returns:
            The run after it settled again, or ``None`` when ``wait`` ran out
            first (the decisions are applied either way once accepted).

        Raises:
            DecisionRefusedError: The workflow refused the decisions.
            RunClosedError: The run closed before the decisions reached it.
            NotAcceptedError: No worker took them within ``wait`` (or
                ``ACCEPT_TIMEOUT``); Temporal keeps them for the run's next worker.
            temporalio.service.RPCError: Temporal is unreachable.
        """
        deadline = _deadline(wait)
        try:
            async with _within(wait or ACCEPT_TIMEOUT):
                update = await self.handle.start_update(
                    DECIDE_UPDATE,
                    request,
                    wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                    result_type=DecideResult,
                    rpc_timeout=wait or ACCEPT_TIMEOUT,
                )
        except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError):
            if _cancelling():
                raise
            # The SDK retries an unreachable server past the bound: say which it was.
            if (down := await _unreachable(self.client)) is not None:
                raise down from None
            raise NotAcceptedError(
                f"no worker took the decisions for {self.handle.id} within "
                f"{(wait or ACCEPT_TIMEOUT).total_seconds():g} s"
            ) from None
        except WorkflowUpdateFailedError as err:
            raise _refusal(err) from None
        except RPCError as err:
            if is_connection_failure(err):
                raise
            # Updates to a closed workflow fail at the RPC level.
            raise RunClosedError(self.run_id, err) from None
        try:
            # Without a wait, only an outcome known already (a refusal): no poll.
            result = await _result_within(
                update.result(), 0.0 if wait is None else _remaining(deadline)
            )
        except WorkflowUpdateFailedError as err:
            raise _refusal(err) from None
        if wait is None or result is None:
            return None
        settled = await self._follow(result.run, deadline)
        return None if settled is None else result.model_copy(update={"run": settled})

    async def _follow(self, view: RunView | None, deadline: float | None) -> RunView | None:
        """``view``, or when the run answered ``RUNNING`` to continue as new, its next settle.

        The run answers attached updates ``RUNNING`` before it continues as
        new, so that no caller holds it in one execution; the wait goes on in
        the next one until the deadline (``None`` then, as for any wait that
        runs out, and when the run cannot be waited on any more).
        """
        while view is not None and view.status is RunStatus.RUNNING:
            try:
                view = await self.wait_settled(
                    view.settle_seq, wait=timedelta(seconds=_remaining(deadline) or 0.0)
                )
            except (RPCError, WorkflowUpdateFailedError) as err:
                if is_connection_failure(err):
                    raise
                return None
        return view

    async def wait_settled(self, after_seq: int, *, wait: timedelta) -> RunView | None:
        """The run once it settles after ``after_seq``, or ``None`` when ``wait`` passes first."""
        return await _result_within(
            self.handle.execute_update(WAIT_SETTLED_UPDATE, after_seq, result_type=RunView),
            wait.total_seconds(),
        )

    async def view(self) -> RunView:
        """The run's view: a query while it is open, its result once closed.

        A closed run's result comes from its history, so reading a finished run
        needs no worker to replay it.

        Raises:
            RunNotFoundError: No such run.
            WorkerUnavailableError: The run is open and no worker answered in time.
        """
        try:
            state = await self._open_state(QUERY_TIMEOUT)
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise RunNotFoundError(self.run_id) from None
            if _no_worker(err):
                raise WorkerUnavailableError(
                    f"no worker answered for run {self.run_id} within "
                    f"{QUERY_TIMEOUT.total_seconds():g} s; it is safe in Temporal and answers"
                    " once a worker polls its task queue"
                ) from None
            raise
        if state is not None:
            return state
        return await self.final_view()

    async def _open_state(self, rpc_timeout: timedelta) -> RunView | None:
        """The ``state`` query's answer, or ``None`` when the run is closed.

        A query that reaches an execution which continued as new is rejected
        (when it raced the hand-over, or its handle names that execution);
        the run is still open, so the query goes to its current execution.
        Without this, the caller would wait on the run's final result: for a
        paused run, until someone decides.
        """
        handle = self.handle
        for _ in range(CONTINUED_AS_NEW_FOLLOWS):
            try:
                state: RunView = await handle.query(
                    STATE_QUERY,
                    reject_condition=QueryRejectCondition.NOT_OPEN,
                    result_type=RunView,
                    rpc_timeout=rpc_timeout,
                )
            except WorkflowQueryRejectedError as err:
                if err.status is not WorkflowExecutionStatus.CONTINUED_AS_NEW:
                    return None
                if handle.run_id is not None and self.client is not None:
                    handle = self.client.get_workflow_handle(handle.id, result_type=RunView)
            else:
                return state
        raise WorkerUnavailableError(
            f"run {self.run_id} kept continuing as new while it was read; read it again"
        )

    async def final_view(self) -> RunView:
        """A closed run's view, from its history."""
        try:
            return await self.handle.result()
        except WorkflowFailureError:
            # Terminated or timed out by an operator: the last state still answers a query.
            last: RunView = await self.handle.query(STATE_QUERY, result_type=RunView)
            return last

    async def open_view(self, *, answer_within: timedelta) -> RunView | None:
        """The view of a run believed open; ``None`` when it closed meanwhile.

        Raises:
            WorkerUnavailableError: The run cannot answer now: its worker fails
                to replay it, none serves it within ``answer_within``, or the
                run vanished.
            temporalio.service.RPCError: Temporal is unreachable.
        """
        try:
            return await self._open_state(answer_within)
        except WorkflowQueryFailedError as err:
            raise WorkerUnavailableError(f"its worker could not answer: {err}") from None
        except RPCError as err:
            if err.status is RPCStatusCode.UNAVAILABLE:
                raise
            raise WorkerUnavailableError(f"its state query failed: {err}") from None

    async def cancel(self) -> None:
        """Ask Temporal to cancel the run: the workflow denies its waiting calls, ends CANCELLED.

        A run that closed meanwhile is left as it is (cancelling is idempotent).

        Raises:
            temporalio.service.RPCError: Temporal is unreachable.
        """
        try:
            await self.handle.cancel()
        except RPCError as err:
            # Temporal answers NOT_FOUND for an execution that already completed.
            if is_connection_failure(err) or err.status is not RPCStatusCode.NOT_FOUND:
                raise

    async def audit(self) -> list[AuditEvent]:
        """The run's audit trail, oldest first.

        Raises:
            RunNotFoundError: No such run.
        """
        try:
            events: list[AuditEvent] = await self.handle.query(
                AUDIT_QUERY, result_type=list[AuditEvent]
            )
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise RunNotFoundError(self.run_id) from None
            raise
        return events

    async def record_refusal(self, attempt: RefusedAttempt) -> bool:
        """Tell the workflow about a refused decision, for its audit trail (best effort).

        The signal changes no call's state; when it cannot be sent the refusal
        is logged here and the caller still answers it.

        Returns:
            Whether the signal was sent.
        """
        try:
            await self.handle.signal(RECORD_REFUSAL_SIGNAL, attempt)
        except (RPCError, RuntimeError) as err:
            logger.warning(
                "could not record a refused decision on %s: %s",
                self.handle.id,
                err,
                extra={"workflow_id": self.handle.id},
            )
            return False
        return True


def _refusal(err: WorkflowUpdateFailedError) -> Exception:
    """The workflow's refusal behind a failed ``decide`` update, else ``err`` itself."""
    cause = err.cause
    if not isinstance(cause, ApplicationError) or cause.type not in set(ErrorCode):
        return err
    code = ErrorCode(str(cause.type))
    if code is ErrorCode.TOO_LATE:
        # Refused because its sender had stopped waiting: what that sender
        # answered (not accepted, nothing applied) is exactly what happened.
        return NotAcceptedError(cause.message)
    return DecisionRefusedError(code, cause.message)


async def _result_within(awaitable: Awaitable[T], seconds: float | None) -> T | None:
    """``awaitable``'s result, or ``None`` when ``seconds`` pass first.

    An outcome the SDK knows already (a refusal that came back with the
    update's acceptance) is returned or raised even when no time is left:
    ``asyncio.timeout`` cancels at the next suspension, and a known outcome
    needs none, where ``wait_for(..., 0)`` would have dropped it unread. At
    the deadline the SDK reports its cancelled poll as
    ``WorkflowUpdateRPCTimeoutOrCancelledError``: that too is the deadline
    passing, unless this task itself is being cancelled.
    """
    try:
        async with _within(None if seconds is None else timedelta(seconds=seconds)):
            return await awaitable
    except TimeoutError:
        return None
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        if _cancelling():
            raise
        return None


def _within(wait: timedelta | None) -> asyncio.Timeout:
    """A bound on a whole SDK call, where ``rpc_timeout`` bounds each of its RPCs.

    The SDK sends an update again each time the server answers that it is
    only admitted (the server's long poll, 20 s by default, ended first), so
    one call can outlast its ``rpc_timeout`` many times over: the API would
    answer after its wait budget, and after its decisions' ``not_after``.
    """
    return asyncio.timeout(None if wait is None else wait.total_seconds())


def _no_worker(err: RPCError) -> bool:
    # A query times out when no worker answers (the client reports its own
    # deadline as CANCELLED "Timeout expired"); the server answers "no poller"
    # at once when a queue's workers stopped polling a while ago.
    return (
        err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED)
        or "no poller" in err.message
    )


async def _read_handle_future(operation: WithStartWorkflowOperation[Any, Any]) -> None:
    # The SDK also puts a failure in the operation's handle future; read it so
    # asyncio does not report it as never retrieved. Bounded: when the request
    # failed before reaching the server the SDK never settles that future.
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(operation.workflow_handle(), 1.0)


async def _unreachable(client: Client | None) -> RPCError | None:
    """The connection failure that explains a call left unanswered, if Temporal is unreachable."""
    if client is None:
        return None
    try:
        await client.service_client.check_health(timeout=PROBE_TIMEOUT)
    except RPCError as err:
        return err if is_connection_failure(err) else None
    return None


async def _exists(client: Client, run_id: str) -> bool | None:
    """Whether Temporal has the run's workflow; ``None`` when it cannot say."""
    try:
        await client.get_workflow_handle(workflow_id(run_id)).describe(
            rpc_timeout=timedelta(seconds=5)
        )
    except RPCError as err:
        return False if err.status is RPCStatusCode.NOT_FOUND else None
    return True


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _deadline(wait: timedelta | None) -> float | None:
    return None if wait is None else asyncio.get_running_loop().time() + wait.total_seconds()


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(deadline - asyncio.get_running_loop().time(), 0.0)
