"""Who may do what with which run: the one place where roles meet runs.

Roles (``countersign.security.KNOWN_ROLES``):

- ``requester`` starts runs, reads its own runs and decides their calls (in
  the AgentOS wire format the requester confirms its own call; the workflow still refuses a
  self-approval when the tool forbids it, e.g. four eyes);
- ``approver`` decides, and reads the runs it can decide (those with a gated
  call) and the approvals inbox;
- ``viewer`` reads every run, decides nothing;
- ``admin`` does everything.

A tool's ``approver_roles`` and ``approvals_required`` narrow deciding further;
the workflow checks them on every decision, so they hold whatever channel a
decision comes through.

Refusals: a principal that may not read a run gets 404, exactly as for a run
that does not exist, so nobody learns which run ids exist; one that may read
the run but not act on it gets 403 ``forbidden``. Route-level role checks
(:data:`PERMISSION_ROLES`, used by ``api.deps.require``) come first; the
per-run checks here come once the run has been read.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from fastapi import status

from api.errors import ApiError
from countersign import access
from countersign.models import ErrorCode, Principal, RunView, ToolCallView
from countersign.security import ROLE_ADMIN, ROLE_APPROVER, ROLE_REQUESTER, ROLE_VIEWER


class Permission(StrEnum):
    """What a route lets its caller do, before the run is known."""

    READ = "read"
    START_RUN = "start_run"
    DECIDE = "decide"
    MINT_TOKEN = "mint_token"


#: Roles that grant each permission (``admin`` grants all).
PERMISSION_ROLES: dict[Permission, tuple[str, ...]] = {
    Permission.READ: (ROLE_VIEWER, ROLE_REQUESTER, ROLE_APPROVER),
    Permission.START_RUN: (ROLE_REQUESTER,),
    # A requester decides only its own runs' calls (checked per run below).
    Permission.DECIDE: (ROLE_APPROVER, ROLE_REQUESTER),
    # A link that decides for someone is an approver's tool, not a requester's.
    Permission.MINT_TOKEN: (ROLE_APPROVER,),
}


def _is(principal: Principal, *roles: str) -> bool:
    return principal.has_any_role(list(roles))


def is_admin(principal: Principal) -> bool:
    """Whether ``principal`` holds ``admin``."""
    return ROLE_ADMIN in principal.roles


def owns(principal: Principal, view: RunView) -> bool:
    """Whether ``principal`` started the run (as a requester)."""
    return access.owns(principal, view.requester)


def can_read(principal: Principal, view: RunView) -> bool:
    """Whether ``principal`` may see the run, its calls and its audit trail."""
    gated = any(t.requires_confirmation for t in view.tools)
    return access.can_read(principal, view.requester, gated=gated)


def can_decide(principal: Principal, view: RunView) -> bool:
    """Whether ``principal`` may send decisions on the run's calls at all."""
    return access.can_decide(principal, view.requester)


def unknown_run(run_id: str) -> ApiError:
    """404 ``unknown_run``: the same answer for a missing run and a hidden one."""
    return ApiError.unknown_run(run_id)


def forbidden(detail: str) -> ApiError:
    """403 ``forbidden``."""
    return ApiError(status.HTTP_403_FORBIDDEN, ErrorCode.FORBIDDEN, detail)


def check_read(principal: Principal, view: RunView) -> RunView:
    """The run, when ``principal`` may read it.

    Raises:
        ApiError: 404 ``unknown_run`` otherwise.
    """
    if not can_read(principal, view):
        raise unknown_run(view.run_id)
    return view


def decide_refusal(principal: Principal, view: RunView) -> ApiError | None:
    """Why ``principal`` may not decide calls of a run it can read, if it may not."""
    if can_decide(principal, view):
        return None
    return forbidden(
        f"deciding needs the {ROLE_APPROVER} role, or being the requester of run {view.run_id}"
    )


def check_mint(principal: Principal, call: ToolCallView, approver_roles: Iterable[str]) -> None:
    """Whether ``principal`` may issue a decision link on ``call`` for ``approver_roles``.

    Raises:
        ApiError: 403 ``forbidden`` without the approver role; 403
            ``approver_role_required`` when the tool names roles the link's
            approver lacks (the link could never be used).
    """
    if not _is(principal, *PERMISSION_ROLES[Permission.MINT_TOKEN]):
        raise forbidden(f"issuing decision links needs the {ROLE_APPROVER} role")
    held = set(approver_roles)
    if call.approver_roles and ROLE_ADMIN not in held and not held & set(call.approver_roles):
        raise ApiError.refusal(
            ErrorCode.FORBIDDEN_ROLE,
            f"deciding {call.tool_name} needs one of the roles {', '.join(call.approver_roles)}",
        )


def list_scope(principal: Principal, user_id: str | None) -> str | None:
    """The ``user_id`` a run listing is limited to (``None``: every run).

    Viewers and admins list every run; anyone else lists their own runs (an
    approver finds the runs waiting for it in the approvals inbox).

    Raises:
        ApiError: 403 ``forbidden`` when asking for another user's runs.
    """
    if _is(principal, ROLE_VIEWER):
        return user_id
    if user_id is not None and user_id != principal.id:
        raise forbidden("you may list only your own runs (user_id must be your principal id)")
    return principal.id


def inbox_scope(principal: Principal, user_id: str | None) -> str | None:
    """The ``user_id`` the approvals inbox is limited to (``None``: every run).

    Approvers, viewers and admins see every pending call; a requester sees
    those of its own runs.

    Raises:
        ApiError: 403 ``forbidden`` when a requester asks for another user's.
    """
    if _is(principal, ROLE_VIEWER, ROLE_APPROVER):
        return user_id
    return list_scope(principal, user_id)
