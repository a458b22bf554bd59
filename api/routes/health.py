"""``/health`` (liveness) and ``/ready`` (readiness) for load balancers and orchestrators.

``/health`` answers 200 while the process serves HTTP, whatever Temporal does:
restarting an API replica does not bring Temporal back. ``/ready`` answers
200 only when this replica can take runs now: Temporal answers and a worker
polls the task queue. Neither sits behind authentication or rate limits.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.service import RPCError

from api.deps import AppState, StateDep
from api.errors import ApiError, is_connection_failure, responses
from api.schemas import HealthPublic, ReadyPublic

router = APIRouter(tags=["health"])

HEALTH_TIMEOUT = timedelta(seconds=2)

#: Upper bound on one readiness check, connecting included: a probe that
#: hangs is as bad as a failed one, and orchestrators time out probes at 1-5 s.
READY_TIMEOUT = timedelta(seconds=2)

#: How long one readiness answer serves later probes. Probes from every load
#: balancer and kubelet then cost Temporal at most one call per replica per
#: interval, and a flood of probes costs nothing.
READY_CACHE_SECONDS = 1.0

#: A worker counts while its last poll is this recent. The server lists a
#: poller for minutes after it stopped, while a live worker polls again at least
#: every minute (a long poll ends after about 60 s).
POLLER_FRESHNESS = timedelta(seconds=90)


@dataclass
class Readiness:
    """The last readiness answer of one app, and the lock that makes probes share a check."""

    answer: ReadyPublic | ApiError | None = None
    checked_at: float = -math.inf
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _readiness(request: Request) -> Readiness:
    # One per app (tests build several apps in a process), kept on Starlette's
    # app state beside the AppState.
    readiness: Readiness | None = getattr(request.app.state, "countersign_readiness", None)
    if readiness is None:
        readiness = Readiness()
        request.app.state.countersign_readiness = readiness
    return readiness


ReadinessDep = Annotated[Readiness, Depends(_readiness)]


@router.get("/health", summary="Liveness and Temporal reachability", response_model=HealthPublic)
async def health(state: StateDep) -> HealthPublic:
    """Always 200 while the API runs; ``temporal`` says whether the server answers.

    Not behind authentication, so load balancers can probe it.
    """
    settings = state.settings
    reachable = False
    try:
        # Bounded, connecting included: a liveness probe that outwaits the
        # kubelet's timeout would restart a healthy API during a Temporal outage.
        async with asyncio.timeout(HEALTH_TIMEOUT.total_seconds()):
            client = await state.ensure_client()
            reachable = await client.service_client.check_health(timeout=HEALTH_TIMEOUT)
    except (ApiError, TimeoutError):
        pass  # could not connect, or no answer in time
    except (RPCError, RuntimeError) as err:
        if not is_connection_failure(err):
            raise
    return HealthPublic(
        temporal="reachable" if reachable else "unreachable",
        auth="disabled" if settings.auth_disabled else "enabled",
        namespace=settings.temporal_namespace,
        task_queue=settings.temporal_task_queue,
        agents=len(state.registry),
    )


@router.get(
    "/ready",
    summary="Readiness: Temporal answers and a worker polls the task queue",
    response_model=ReadyPublic,
    responses=responses(503),
)
async def ready(state: StateDep, readiness: ReadinessDep) -> ReadyPublic:
    """200 when this replica can take runs now; 503 naming the check that failed.

    ``temporal_unavailable``: Temporal does not answer (or refuses to describe
    the task queue). ``worker_unavailable``: no worker has polled the task queue
    in the last 90 seconds, so runs would start and wait. The answer is
    cached for a second, so frequent probes cost Temporal nothing more.
    """
    async with readiness.lock:
        if time.monotonic() - readiness.checked_at >= READY_CACHE_SECONDS:
            try:
                readiness.answer = await _check(state)
            except ApiError as err:
                readiness.answer = err
            readiness.checked_at = time.monotonic()
        answer = readiness.answer
    if isinstance(answer, ApiError):
        raise answer
    assert answer is not None  # set under the lock above
    return answer


async def _check(state: AppState) -> ReadyPublic:
    settings = state.settings
    task_queue = settings.temporal_task_queue
    try:
        async with asyncio.timeout(READY_TIMEOUT.total_seconds()):
            client = await state.ensure_client()
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(
                        name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL
                    ),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                ),
                timeout=READY_TIMEOUT,
            )
    except TimeoutError:
        silent = TimeoutError(f"no answer within {READY_TIMEOUT.total_seconds():g} s")
        raise ApiError.temporal_unavailable(silent) from None
    except (RPCError, RuntimeError) as err:
        if is_connection_failure(err):
            raise ApiError.temporal_unavailable(err) from None
        if not isinstance(err, RPCError):
            raise
        # Reachable, but refusing: an unknown namespace, a key without access.
        refused = ApiError.temporal_unavailable(err)
        raise ApiError(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            refused.code,
            f"Temporal refused to describe task queue {task_queue!r}: {err.message}",
            headers=refused.headers,
        ) from None
    since = datetime.now(UTC) - POLLER_FRESHNESS
    workers = sum(1 for p in response.pollers if p.last_access_time.ToDatetime(UTC) >= since)
    if workers == 0:
        raise ApiError.worker_unavailable(
            f"no worker polls task queue {task_queue!r} in namespace {client.namespace!r}: "
            "runs would start and wait"
        )
    return ReadyPublic(namespace=client.namespace, task_queue=task_queue, workers=workers)
