"""Who may read and decide a run, as pure predicates of the principal and the run's facts.

The API applies them to a run it has read (``api.policy``); the workflow's
``decide`` validator applies them to a decision sent without that read (a
``DecisionScope``), so both answer the same question the same way. They use
only facts fixed when the run started, and whether it has a gated call.
"""

from __future__ import annotations

from countersign.models import ErrorCode, Principal, RunStatus
from countersign.security import ROLE_APPROVER, ROLE_REQUESTER, ROLE_VIEWER


def owns(principal: Principal, requester: Principal) -> bool:
    """Whether ``principal`` started the run (as a requester)."""
    return principal.id == requester.id and principal.has_any_role([ROLE_REQUESTER])


def can_read(principal: Principal, requester: Principal, *, gated: bool) -> bool:
    """Whether ``principal`` may see the run; ``gated``: the run has a call needing confirmation."""
    if principal.has_any_role([ROLE_VIEWER]) or owns(principal, requester):
        return True
    # An approver sees the runs it may be asked to decide: those with a gated call.
    return gated and principal.has_any_role([ROLE_APPROVER])


def can_decide(principal: Principal, requester: Principal) -> bool:
    """Whether ``principal`` may send decisions on the run's calls at all.

    The workflow then applies each tool's own rules (approver roles, four
    eyes, self-approval).
    """
    return principal.has_any_role([ROLE_APPROVER]) or owns(principal, requester)


# The words of the refusals a read of the run makes, the same whether the API
# or the ``decide`` validator makes them.


def unknown_run(run_id: str) -> str:
    """A run that does not exist, or that the caller may not see."""
    return f"run {run_id} does not exist"


def session_mismatch(run_id: str, session_id: str) -> str:
    """Decisions that name another session than the run's."""
    return f"run {run_id} belongs to another session than {session_id!r}"


def not_paused(run_id: str, status: RunStatus) -> str:
    """Decisions on a run that awaits none."""
    return f"run {run_id} is {status.value}, not PAUSED: nothing to decide"


#: Refusals of decisions sent without a read of the run (with a
#: ``DecisionScope``) that the API redoes on the path that reads the run: who
#: may see it, and edits, which that path checks against the tool's schema.
READ_FIRST = frozenset(
    {ErrorCode.UNKNOWN_RUN, ErrorCode.FORBIDDEN, ErrorCode.SESSION_MISMATCH, ErrorCode.INVALID_ARGS}
)
