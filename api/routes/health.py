"""``/health``: the API is up; whether Temporal answers; whether auth is on."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from temporalio.service import RPCError

from api.deps import StateDep
from api.errors import ApiError, is_connection_failure
from api.schemas import HealthPublic

router = APIRouter(tags=["health"])

HEALTH_TIMEOUT = timedelta(seconds=2)


@router.get("/health", summary="Liveness and Temporal reachability", response_model=HealthPublic)
async def health(state: StateDep) -> HealthPublic:
    """Always 200 while the API runs; ``temporal`` says whether the server answers.

    Not behind authentication, so load balancers can probe it.
    """
    settings = state.settings
    reachable = False
    try:
        client = await state.ensure_client()
        reachable = await client.service_client.check_health(timeout=HEALTH_TIMEOUT)
    except ApiError:
        pass  # ensure_client could not connect
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
