"""Request bodies that arrive form-encoded (as in the AgentOS wire format) or as JSON.

FastAPI reads a body as one or the other; AgentOS clients send forms whose
``tools`` field is a JSON string, and JSON clients send real arrays. These
dependencies accept both and report problems as 422 ``invalid_request`` saying
where.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, status
from pydantic import BaseModel, ValidationError

from api.errors import ApiError, validation_detail
from api.schemas import (
    ApprovalDecision,
    DecisionTokenCreate,
    DecisionTokenRedeem,
    RunContinue,
    RunCreate,
)
from countersign.models import ErrorCode

M = TypeVar("M", bound=BaseModel)

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def read_fields(request: Request) -> dict[str, Any]:
    """The body's fields, from a form or a JSON object; ``{}`` for an empty body.

    Raises:
        ApiError: 422 for JSON that is not an object, 415 for other media types.
    """
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith(FORM_TYPES):
        form = await request.form()
        return {key: value for key, value in form.items() if isinstance(value, str)}
    body = await request.body()
    if content_type.startswith("application/json") or (not content_type and body.strip()):
        if not body.strip():
            return {}
        try:
            data = json.loads(body)
        except ValueError as err:
            raise ApiError.invalid(f"body: not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise ApiError.invalid("body: must be a JSON object")
        return data
    if not body:
        return {}
    raise ApiError(
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        f"send application/x-www-form-urlencoded or application/json, not {content_type}",
    )


def parse(model: type[M], fields: dict[str, Any]) -> M:
    """Validate fields into ``model``.

    Raises:
        ApiError: 422 ``invalid_request`` naming each bad field.
    """
    try:
        return model.model_validate(fields)
    except ValidationError as err:
        raise ApiError.invalid(validation_detail(err.errors())) from None


def _form_bool(fields: dict[str, Any], name: str) -> None:
    # Form fields are strings; an empty "stream=" means the default, not an error.
    if fields.get(name) == "":
        fields.pop(name)


async def run_create_body(request: Request) -> RunCreate:
    """The body of ``POST /agents/{agent_id}/runs``."""
    fields = await read_fields(request)
    _form_bool(fields, "stream")
    for name in ("session_id", "user_id"):
        if fields.get(name) == "":
            fields.pop(name)
    return parse(RunCreate, fields)


def decode_tools(value: Any) -> list[Any]:
    """``tools`` as a list: a JSON string (form) or an array (JSON body).

    Raises:
        ApiError: 422 saying whether the JSON or its shape is wrong.
    """
    if value is None:
        raise ApiError.invalid("tools: field required (a JSON array of decisions)")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as err:
            raise ApiError.invalid(f"tools: not valid JSON ({err})") from None
    if not isinstance(value, list):
        raise ApiError.invalid("tools: must be a JSON array of decisions")
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise ApiError.invalid(
                f"tools.{index}: must be an object with tool_call_id and confirmed"
            )
    return value


async def run_continue_body(request: Request) -> RunContinue:
    """The body of ``POST /agents/{agent_id}/runs/{run_id}/continue``."""
    fields = await read_fields(request)
    _form_bool(fields, "stream")
    fields["tools"] = decode_tools(fields.get("tools"))
    return parse(RunContinue, fields)


async def approval_decision_body(request: Request) -> ApprovalDecision:
    """The (optional) body of ``/approvals/{approval_id}/approve`` and ``/reject``."""
    fields = await read_fields(request)
    if isinstance(fields.get("tool_args"), str):
        try:
            fields["tool_args"] = json.loads(fields["tool_args"])
        except ValueError as err:
            raise ApiError.invalid(f"tool_args: not valid JSON ({err})") from None
    return parse(ApprovalDecision, fields)


async def token_create_body(request: Request) -> DecisionTokenCreate:
    """The body of ``POST /approvals/{approval_id}/tokens``."""
    fields = await read_fields(request)
    if isinstance(fields.get("approver_roles"), str):
        # A form field: comma-separated roles.
        fields["approver_roles"] = [r.strip() for r in fields["approver_roles"].split(",")]
    return parse(DecisionTokenCreate, fields)


async def token_redeem_body(request: Request) -> DecisionTokenRedeem:
    """The body of ``POST /decision-tokens``."""
    return parse(DecisionTokenRedeem, await read_fields(request))


RunCreateBody = Annotated[RunCreate, Depends(run_create_body)]
RunContinueBody = Annotated[RunContinue, Depends(run_continue_body)]
ApprovalDecisionBody = Annotated[ApprovalDecision, Depends(approval_decision_body)]
TokenCreateBody = Annotated[DecisionTokenCreate, Depends(token_create_body)]
TokenRedeemBody = Annotated[DecisionTokenRedeem, Depends(token_redeem_body)]


def request_body(model: type[BaseModel], examples: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for a body read by these dependencies (form or JSON)."""
    schema = model.model_json_schema()
    content = {
        "schema": schema,
        "examples": {name: {"summary": name, "value": value} for name, value in examples.items()},
    }
    form_examples = {
        name: {
            "summary": name,
            "value": {
                k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in value.items()
            },
        }
        for name, value in examples.items()
    }
    return {
        "requestBody": {
            "required": model is not ApprovalDecision,
            "content": {
                "application/x-www-form-urlencoded": {"schema": schema, "examples": form_examples},
                "application/json": content,
            },
        }
    }
