"""Errors as JSON ``{"detail": ..., "code": ...}``, with a stable code each.

Routes raise :class:`ApiError`; every code is an :class:`ErrorCode` (or a
decision token's :class:`TokenErrorCode`). Workflow refusals map to an HTTP
status here and nowhere else, and so does what the run client reports.
Request validation, unknown routes and Temporal being unreachable get the
same body shape, never a 500 with a traceback.
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
from temporalio.service import RPCError

from api.schemas import ErrorBody
from countersign import access
from countersign.client import (
    DecisionRefusedError,
    RunNotFoundError,
    StartNotConfirmedError,
    WorkerUnavailableError,
    is_connection_failure,
)

__all__ = [
    "REFUSAL_STATUS",
    "ApiError",
    "code_of_status",
    "error_response",
    "install",
    "is_connection_failure",  # the run client's, for routes that reach Temporal themselves
    "responses",
    "run_client_error",
    "validation_detail",
]
from countersign.models import ErrorCode
from countersign.security.decision_tokens import TokenErrorCode

logger = logging.getLogger("countersign.api")

#: HTTP status of each workflow refusal (the table in ``docs/architecture.md``).
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
    ErrorCode.CALL_CANCELLED: status.HTTP_409_CONFLICT,
    ErrorCode.SEQ_AHEAD: status.HTTP_409_CONFLICT,
    ErrorCode.FORBIDDEN_ROLE: status.HTTP_403_FORBIDDEN,
    ErrorCode.SELF_APPROVAL: status.HTTP_403_FORBIDDEN,
    ErrorCode.UNAUTHORISED_DECISION: status.HTTP_403_FORBIDDEN,
    # The run client reports it as not accepted (503 ``worker_unavailable``).
    ErrorCode.TOO_LATE: status.HTTP_503_SERVICE_UNAVAILABLE,
}

_CODE_OF_STATUS = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    410: ErrorCode.GONE,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.INVALID_REQUEST,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.TEMPORAL_UNAVAILABLE,
}

#: A stable code: the API's and the workflow's, or a decision token's refusal.
Code = ErrorCode | TokenErrorCode


class ApiError(Exception):
    """A request the API refuses, with its HTTP status and stable code."""

    def __init__(
        self,
        status_code: int,
        code: Code,
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
        return cls(REFUSAL_STATUS.get(code, status.HTTP_409_CONFLICT), code, detail)

    @classmethod
    def worker_unavailable(cls, detail: str) -> ApiError:
        """Temporal answered, but no worker served the run in time."""
        return cls(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            ErrorCode.WORKER_UNAVAILABLE,
            detail,
            headers={"Retry-After": "5"},
        )

    @classmethod
    def temporal_unavailable(cls, err: BaseException) -> ApiError:
        """Temporal could not be reached; the request changed nothing we know of."""
        return cls(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            ErrorCode.TEMPORAL_UNAVAILABLE,
            f"Temporal is unreachable, try again later ({err})",
            headers={"Retry-After": "5"},
        )

    @classmethod
    def unknown_run(cls, run_id: str) -> ApiError:
        """404 ``unknown_run``: the same answer for a missing run and a hidden one."""
        return cls(status.HTTP_404_NOT_FOUND, ErrorCode.UNKNOWN_RUN, access.unknown_run(run_id))

    @classmethod
    def invalid(cls, detail: str) -> ApiError:
        """422 ``invalid_request``: the request is malformed; ``detail`` says where."""
        return cls(status.HTTP_422_UNPROCESSABLE_CONTENT, ErrorCode.INVALID_REQUEST, detail)


def code_of_status(status_code: int) -> ErrorCode:
    """The code of an HTTP error that carries none of its own."""
    return _CODE_OF_STATUS.get(status_code, ErrorCode.ERROR)


def run_client_error(err: Exception) -> ApiError | None:
    """The HTTP error for what the run client reports, ``None`` for anything else."""
    if isinstance(err, RunNotFoundError):
        return ApiError.unknown_run(err.run_id)
    if isinstance(err, WorkerUnavailableError):
        return ApiError.worker_unavailable(str(err))
    if isinstance(err, DecisionRefusedError):
        return ApiError.refusal(err.code, err.message)
    if isinstance(err, StartNotConfirmedError):
        return ApiError(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            ErrorCode.TEMPORAL_UNAVAILABLE,
            str(err),
            headers={"Retry-After": "5"},
        )
    if is_connection_failure(err):
        return ApiError.temporal_unavailable(err)
    return None


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
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        ErrorCode.INVALID_REQUEST,
        validation_detail(exc.errors()),
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code: str = code_of_status(exc.status_code)
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
        status.HTTP_502_BAD_GATEWAY, ErrorCode.TEMPORAL_ERROR, f"Temporal refused the call: {exc}"
    )


async def _update_timeout(_: Request, exc: Exception) -> JSONResponse:
    err = ApiError(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        ErrorCode.TEMPORAL_UNAVAILABLE,
        "Temporal did not answer the update in time; the run may have moved on: read it again",
        headers={"Retry-After": "5"},
    )
    return error_response(err.status_code, err.code, err.detail, err.headers)


async def _run_client_error(request: Request, exc: Exception) -> JSONResponse:
    err = run_client_error(exc)
    if err is None:
        return await _runtime_error(request, exc)
    return error_response(err.status_code, err.code, err.detail, err.headers)


async def _runtime_error(request: Request, exc: Exception) -> JSONResponse:
    if is_connection_failure(exc):
        return await _rpc_error(request, exc)
    logger.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        status.HTTP_500_INTERNAL_SERVER_ERROR, ErrorCode.INTERNAL_ERROR, "internal error (logged)"
    )


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into an ``ErrorBody``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RPCError, _rpc_error)
    app.add_exception_handler(WorkflowUpdateRPCTimeoutOrCancelledError, _update_timeout)
    app.add_exception_handler(RuntimeError, _runtime_error)
    for client_error in (
        RunNotFoundError,
        WorkerUnavailableError,
        DecisionRefusedError,
        StartNotConfirmedError,
    ):
        app.add_exception_handler(client_error, _run_client_error)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route may answer, with examples."""
    examples = {
        401: (
            "credentials required: send 'Authorization: Bearer <API key or JWT>'",
            ErrorCode.UNAUTHENTICATED,
        ),
        403: ("deciding delete_records needs one of the roles dba", ErrorCode.FORBIDDEN_ROLE),
        404: ("run 6f1c... does not exist", ErrorCode.UNKNOWN_RUN),
        409: (
            "tool call fc_08... was already decided by alice (EXECUTED)",
            ErrorCode.ALREADY_DECIDED,
        ),
        410: ("confirmation of fc_08... expired at 2026-01-02T10:00:00Z", ErrorCode.EXPIRED),
        413: ("request body exceeds 262144 bytes", ErrorCode.PAYLOAD_TOO_LARGE),
        422: ("tools: not valid JSON (Expecting value at char 0)", ErrorCode.INVALID_REQUEST),
        429: ("rate limit exceeded; retry in 2 s", ErrorCode.RATE_LIMITED),
        503: ("Temporal is unreachable, try again later", ErrorCode.TEMPORAL_UNAVAILABLE),
    }
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        detail, stable = examples[code]
        out[code] = {
            "model": ErrorBody,
            "content": {"application/json": {"example": {"detail": detail, "code": stable.value}}},
        }
    return out
