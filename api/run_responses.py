"""How a route answers with a run: the body, 200 or 202, and its OpenAPI description."""

from __future__ import annotations

from typing import Any

from fastapi import status
from fastapi.responses import JSONResponse

from api.events import SSE_MEDIA_TYPE
from api.examples import EXAMPLE_COMPLETED_RUN, EXAMPLE_PAUSED_RUN
from api.schemas import RunPublic
from countersign.models import RunView


def run_response(view: RunView, settled: bool = True) -> JSONResponse:
    """The run body; 202 when it has not settled within the wait budget."""
    return JSONResponse(
        RunPublic.of(view).model_dump(mode="json"),
        status_code=status.HTTP_200_OK if settled else status.HTTP_202_ACCEPTED,
    )


#: The OpenAPI ``responses`` of a route that answers with a run once it settles.
RUN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The run once settled: PAUSED with pending calls, COMPLETED or ERROR. "
        "With `stream=true`, Server-Sent Events instead (see the route's description).",
        "content": {
            "application/json": {
                "examples": {
                    "paused": {"summary": "paused", "value": EXAMPLE_PAUSED_RUN},
                    "completed": {"summary": "completed", "value": EXAMPLE_COMPLETED_RUN},
                }
            },
            SSE_MEDIA_TYPE: {
                "example": "event: RunStarted\ndata: {...}\n\nevent: RunPaused\ndata: {...}\n\n"
            },
        },
    },
    202: {
        "description": "The wait budget ran out; the run goes on (GET it later).",
        "model": RunPublic,
        "content": {"application/json": {"example": {**EXAMPLE_PAUSED_RUN, "status": "RUNNING"}}},
    },
}
