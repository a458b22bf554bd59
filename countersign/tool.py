"""The ``@tool`` decorator: a typed function becomes a tool the model can call.

The parameter schema comes from the signature through pydantic, the description
from the docstring, and the confirmation policy from the decorator's arguments.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, create_model

from countersign.context import ToolContext
from countersign.models import ConfirmationPolicy, TimeoutAction

ToolFunction = Callable[..., Any]
ConfirmationPredicate = Callable[[Mapping[str, Any]], bool]


class ToolError(Exception):
    """Raised by a tool to report a failure to the model.

    It is not retried: the call ends ``FAILED`` and the message is the result the
    model sees. Any other exception is retried by Temporal first.
    """


class ToolArgumentsError(ValueError):
    """Arguments that do not fit the tool's schema."""


_ARGS_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.+)$")


def _split_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its description and argument notes."""
    description: list[str] = []
    arg_notes: dict[str, str] = {}
    in_args = False
    for line in inspect.cleandoc(doc).splitlines():
        if _ARGS_SECTION.match(line):
            in_args = True
            continue
        if in_args:
            match = _ARG_LINE.match(line)
            if match:
                arg_notes[match.group(1)] = match.group(2).strip()
                continue
            if line.strip() and not line.startswith(" "):
                in_args = False
        if not in_args:
            description.append(line)
    return "\n".join(description).strip(), arg_notes


@dataclass(frozen=True)
class Tool:
    """A function the model may call, with its schema and confirmation policy.

    Build one with :func:`tool`. ``requires_confirmation`` says which calls
    wait for a person; ``confirmation`` how they are decided (who, how many,
    how long, what happens at expiry, whether arguments may be edited).
    """

    name: str
    description: str
    function: ToolFunction
    args_model: type[BaseModel]
    context_param: str | None = None
    requires_confirmation: bool | ConfirmationPredicate = False
    confirmation: ConfirmationPolicy = field(default_factory=ConfirmationPolicy)

    def __post_init__(self) -> None:
        if self.confirmation.approvals_required < 1:
            raise ValueError(f"{self.name}: approvals_required must be at least 1")

    @property
    def parameters_schema(self) -> dict[str, Any]:
        """JSON schema of the arguments, as sent to the model (a copy the caller may change)."""
        return copy.deepcopy(self._parameters_schema)

    @functools.cached_property
    def _parameters_schema(self) -> dict[str, Any]:
        # Once per tool: pydantic builds it anew on every call, about a
        # millisecond of the worker's CPU per tool and model turn.
        schema = self.args_model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        schema["additionalProperties"] = False
        return schema

    def validate_args(self, args: Mapping[str, Any]) -> dict[str, JsonValue]:
        """Validate arguments against the schema.

        Returns:
            The arguments as validated (coerced) JSON, which is what an approver
            is shown and what the tool receives.

        Raises:
            ToolArgumentsError: With a message the model can act on.
        """
        try:
            model = self.args_model.model_validate(dict(args))
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
                for e in err.errors()
            )
            raise ToolArgumentsError(f"invalid arguments for {self.name}: {problems}") from None
        dumped: dict[str, JsonValue] = model.model_dump(mode="json")
        return dumped

    def needs_confirmation(self, args: Mapping[str, Any]) -> bool:
        """Whether a call with these (validated) arguments must be confirmed."""
        if callable(self.requires_confirmation):
            return bool(self.requires_confirmation(args))
        return self.requires_confirmation

    def confirmation_policy(self, default_ttl: timedelta) -> ConfirmationPolicy:
        """The policy recorded on a gated call of this tool.

        Args:
            default_ttl: The run's time-to-live for tools that set none.
        """
        if "ttl" in self.confirmation.model_fields_set:
            return self.confirmation
        return self.confirmation.model_copy(update={"ttl": default_ttl})

    async def invoke(self, args: Mapping[str, Any], ctx: ToolContext) -> str:
        """Run the tool with validated arguments; sync tools run in a thread."""
        kwargs = dict(self.args_model.model_validate(dict(args)))
        if self.context_param is not None:
            kwargs[self.context_param] = ctx
        if inspect.iscoroutinefunction(self.function):
            result = await self.function(**kwargs)
        else:
            result = await asyncio.to_thread(self.function, **kwargs)
        return result if isinstance(result, str) else str(result)


def _build_tool(
    function: ToolFunction,
    *,
    name: str | None,
    description: str | None,
    requires_confirmation: bool | ConfirmationPredicate,
    confirmation: ConfirmationPolicy,
) -> Tool:
    hints = get_type_hints(function, include_extras=True)
    doc_description, arg_notes = _split_docstring(function.__doc__ or "")
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for param in inspect.signature(function).parameters.values():
        annotation = hints.get(param.name, Any)
        if annotation is ToolContext:
            context_param = param.name
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{function.__name__}: *args and **kwargs cannot be tool parameters")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (
            annotation,
            Field(default, description=arg_notes.get(param.name)),
        )
    tool_name = name or function.__name__
    args_model = create_model(
        f"{tool_name}_args",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )
    return Tool(
        name=tool_name,
        description=description or doc_description or tool_name,
        function=function,
        args_model=args_model,
        context_param=context_param,
        requires_confirmation=requires_confirmation,
        confirmation=confirmation,
    )


@overload
def tool(function: ToolFunction, /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    requires_confirmation: bool | ConfirmationPredicate = False,
    approver_roles: set[str] | frozenset[str] = frozenset(),
    approvals_required: int = 1,
    allow_self_approval: bool | None = None,
    confirmation_ttl: timedelta | None = None,
    on_timeout: TimeoutAction | str = TimeoutAction.DENY,
    allow_edit: bool = False,
) -> Callable[[ToolFunction], Tool]: ...


def tool(
    function: ToolFunction | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    requires_confirmation: bool | ConfirmationPredicate = False,
    approver_roles: set[str] | frozenset[str] = frozenset(),
    approvals_required: int = 1,
    allow_self_approval: bool | None = None,
    confirmation_ttl: timedelta | None = None,
    on_timeout: TimeoutAction | str = TimeoutAction.DENY,
    allow_edit: bool = False,
) -> Tool | Callable[[ToolFunction], Tool]:
    """Turn a typed function (sync or async) into a :class:`Tool`.

    Use as ``@tool`` or ``@tool(requires_confirmation=True, ...)``. The
    confirmation arguments build the tool's one :class:`ConfirmationPolicy`.

    Args:
        function: The function, when used without arguments.
        name: Tool name shown to the model; the function's name by default.
        description: Overrides the docstring's description.
        requires_confirmation: ``True`` to gate every call, or a predicate over
            the validated arguments to gate some (``lambda a: a["count"] > 100``).
        approver_roles: Roles allowed to decide; empty means any approver.
        approvals_required: Distinct approvals needed (2 or more: four eyes).
        allow_self_approval: Whether the run's requester may approve; by
            default yes for one approval, no for several.
        confirmation_ttl: How long a decision may take; the settings' default
            when ``None``. At expiry the call is denied.
        on_timeout: ``"deny"`` (the model is told) or ``"cancel_run"``.
        allow_edit: Whether an approver may change the arguments.

    Returns:
        The tool, or a decorator that makes one.
    """
    policy = ConfirmationPolicy(
        approver_roles=sorted(approver_roles),
        approvals_required=approvals_required,
        allow_self_approval=(
            approvals_required == 1 if allow_self_approval is None else allow_self_approval
        ),
        on_timeout=TimeoutAction(on_timeout),
        allow_edit=allow_edit,
    )
    if confirmation_ttl is not None:
        # Set only when given: an unset ttl takes the run's default (see confirmation_policy).
        policy.ttl = confirmation_ttl

    def decorate(fn: ToolFunction) -> Tool:
        return _build_tool(
            fn,
            name=name,
            description=description,
            requires_confirmation=requires_confirmation,
            confirmation=policy,
        )

    if function is not None:
        return decorate(function)
    return decorate
