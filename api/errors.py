"""Errors as JSON ``{"detail": ..., "code": ...}``, with a stable code each.

Routes raise :class:`ApiError`; workflow refusals (``ErrorCode``) map to an HTTP
status here and nowhere else; request validation, unknown routes and Temporal
being unreachable get the same body shape, never a 500 with a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from api.schemas import ErrorBody
from countersign.models import ErrorCode

logger = logging.getLogger("countersign.api")

INVALID_REQUEST = "invalid_request"
UNKNOWN_AGENT = "unknown_agent"
UNKNOWN_RUN = "unknown_run"
UNKNOWN_APPROVAL = "unknown_approval"
SESSION_MISMATCH = "session_mismatch"
RUN_EXISTS = "run_exists"
TEMPORAL_UNAVAILABLE = "temporal_unavailable"
WORKER_UNAVAILABLE = "worker_unavailable"
SHUTTING_DOWN = "shutting_down"
FORBIDDEN = "forbidden"
UNAUTHENTICATED = "unauthenticated"
PAYLOAD_TOO_LARGE = "payload_too_large"
RATE_LIMITED = "rate_limited"
DECISION_TOKENS_DISABLED = "decision_tokens_disabled"

#: HTTP status of each workflow refusal (DESIGN §5).
REFUSAL_STATUS: dict[ErrorCode, int] = {
    ErrorCode.UNKNOWN_CALL: status.HTTP_404_NOT_FOUND,
    ErrorCode.DUPLICATE_CALL: status.HTTP_422_UNPROCESSABLE_CONTENT,
    ErrorCode.EMPTY_DECISION: status.HTTP_422_UNPROCESSABLE_CONTENT,
    ErrorCode.TOOL_MISMATCH: status.HTTP_422_UNPROCESSABLE_CONTENT,
    ErrorCode.INVALID_ARGS: status.HTTP_422_UNPROCESSABLE_CONTENT,
    ErrorCode.ARGS_MISMATCH: status.HTTP_409_CONFLICT,
    ErrorCode.NOT_PAUSED: status.HTTP_409_CONFLICT,
    ErrorCode.NOT_AWAITING: status.HTTP_409_CONFLICT,
    ErrorCode.ALREADY_DECIDED: status.HTTP_409_CONFLICT,
    ErrorCode.ALREADY_APPROVED_BY: status.HTTP_409_CONFLICT,
    ErrorCode.EXPIRED: status.HTTP_410_GONE,
    ErrorCode.FORBIDDEN_ROLE: status.HTTP_403_FORBIDDEN,
    ErrorCode.SELF_APPROVAL: status.HTTP_403_FORBIDDEN,
}

_CODE_OF_STATUS = {
    400: "bad_request",
    401: UNAUTHENTICATED,
    403: FORBIDDEN,
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: PAYLOAD_TOO_LARGE,
    415: "unsupported_media_type",
    422: INVALID_REQUEST,
    429: RATE_LIMITED,
    503: TEMPORAL_UNAVAILABLE,
}


class ApiError(Exception):
    """A request the API refuses, with its HTTP status and stable code."""

    def __init__(
        self,
        status_code: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.code = code
        self.detail = detail
        self.headers = headers

    @classmethod
    def refusal(cls, code: ErrorCode, detail: str) -> ApiError:
        """A workflow refusal as an HTTP error."""
        return cls(REFUSAL_STATUS.get(code, status.HTTP_409_CONFLICT), code.value, detail)

    @classmethod
    def worker_unavailable(cls, detail: str) -> ApiError:
        """Temporal answered, but no worker served the run in time."""
        return cls(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            WORKER_UNAVAILABLE,
            detail,
            headers={"Retry-After": "5"},
        )

    @classmethod
    def temporal_unavailable(cls, err: BaseException) -> ApiError:
        """Temporal could not be reached; the request changed nothing we know of."""
        return cls(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            TEMPORAL_UNAVAILABLE,
            f"Temporal is unreachable, try again later ({err})",
            headers={"Retry-After": "5"},
        )


#: RPC status codes that mean "the server is not there", not "your request is wrong".
UNAVAILABLE_RPC = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
)


def is_connection_failure(err: BaseException) -> bool:
    """Whether ``err`` says Temporal is unreachable (rather than refusing a request)."""
    if isinstance(err, RPCError):
        return err.status in UNAVAILABLE_RPC
    # A lazy client that cannot connect raises a plain RuntimeError from the core.
    return isinstance(err, RuntimeError) and "client connect" in str(err)


def error_response(
    status_code: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The JSON body every error has."""
    body = ErrorBody(detail=detail, code=code)
    return JSONResponse(body.model_dump(), status_code=status_code, headers=headers)


def _where(loc: Sequence[Any]) -> str:
    # Drop FastAPI's "body"/"query" prefix only when something more precise follows.
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "form"):
        parts = parts[1:]
    return ".".join(parts) or "(request)"


def validation_detail(errors: Sequence[Any]) -> str:
    """Pydantic or FastAPI validation errors as one sentence saying where."""
    return "; ".join(f"{_where(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.detail, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(
        status.HTTP_422_UNPROCESSABLE_CONTENT, INVALID_REQUEST, validation_detail(exc.errors())
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODE_OF_STATUS.get(exc.status_code, "error")
    detail: Any = exc.detail
    # Auth may raise HTTPException(detail={"detail": ..., "code": ...}) to set the code.
    if isinstance(detail, dict):
        code = str(detail.get("code", code))
        detail = detail.get("detail", "")
    return error_response(exc.status_code, code, str(detail), exc.headers)


async def _rpc_error(_: Request, exc: Exception) -> JSONResponse:
    if is_connection_failure(exc):
        err = ApiError.temporal_unavailable(exc)
        logger.warning("Temporal unreachable: %s", exc)
        return error_response(err.status_code, err.code, err.detail, err.headers)
    logger.exception("Temporal refused a call", exc_info=exc)
    return error_response(
        status.HTTP_502_BAD_GATEWAY, "temporal_error", f"Temporal refused the call: {exc}"
    )


async def _update_timeout(_: Request, exc: Exception) -> JSONResponse:
    err = ApiError(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        TEMPORAL_UNAVAILABLE,
        "Temporal did not answer the update in time; the run may have moved on: read it again",
        headers={"Retry-After": "5"},
    )
    return error_response(err.status_code, err.code, err.detail, err.headers)


async def _runtime_error(request: Request, exc: Exception) -> JSONResponse:
    if is_connection_failure(exc):
        return await _rpc_error(request, exc)
    logger.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        status.HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "internal error (logged)"
    )


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into an ``ErrorBody``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RPCError, _rpc_error)
    app.add_exception_handler(WorkflowUpdateRPCTimeoutOrCancelledError, _update_timeout)
    app.add_exception_handler(RuntimeError, _runtime_error)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route may answer, with examples."""
    examples = {
        401: (
            "credentials required: send 'Authorization: Bearer <API key or JWT>'",
            UNAUTHENTICATED,
        ),
        403: ("deciding delete_records needs one of the roles dba", "approver_role_required"),
        404: ("run 6f1c... does not exist", UNKNOWN_RUN),
        409: ("tool call fc_08... was already decided by alice (EXECUTED)", "already_decided"),
        410: ("confirmation of fc_08... expired at 2026-01-02T10:00:00Z", "confirmation_expired"),
        413: ("request body exceeds 262144 bytes", PAYLOAD_TOO_LARGE),
        422: ("tools: not valid JSON (Expecting value at char 0)", INVALID_REQUEST),
        429: ("rate limit exceeded; retry in 2 s", RATE_LIMITED),
        503: ("Temporal is unreachable, try again later", TEMPORAL_UNAVAILABLE),
    }
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        detail, stable = examples[code]
        out[code] = {
            "model": ErrorBody,
            "content": {"application/json": {"example": {"detail": detail, "code": stable}}},
        }
    return out
