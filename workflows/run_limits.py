"""The run's own limits: caps that end it in ERROR before Temporal's limits
would wedge it, and call ids the run can always tell apart.

Pure functions; a cap returns the run's error text, or ``None`` when within it.
"""

from __future__ import annotations

from countersign.limits import MAX_ID_LENGTH, RunOptions
from countersign.models import RunState


def too_many_calls(count: int, options: RunOptions) -> str | None:
    """The error when one model turn proposed more calls than ``max_calls_per_turn``."""
    if count <= options.max_calls_per_turn:
        return None
    return (
        f"the model proposed {count} tool calls in one turn; the limit is"
        f" {options.max_calls_per_turn} (max_calls_per_turn)"
    )


def state_too_large(state: RunState, options: RunOptions) -> str | None:
    """The error when the run state has grown past ``max_state_bytes``."""
    size = len(state.model_dump_json())
    if size <= options.max_state_bytes:
        return None
    return (
        f"the run's state grew to {size} bytes; the limit is {options.max_state_bytes}"
        " (max_state_bytes)"
    )


def own_call_id(proposed: str, taken: set[str], position: int) -> str | None:
    """An id of the run's own for a call whose model-given id cannot identify it.

    Models may reuse ids (``call_0`` in every turn), and an id past
    ``MAX_ID_LENGTH`` could not be named in a decision.

    Args:
        proposed: The id the model gave.
        taken: The ids of the run's calls so far.
        position: The call's index among the run's calls, which makes the id unique.

    Returns:
        ``None`` when the model's id is usable as it is.
    """
    if proposed not in taken and len(proposed) <= MAX_ID_LENGTH:
        return None
    candidate = base = f"{proposed[:64]}~{position}"
    suffix = 0
    while candidate in taken:
        suffix += 1
        candidate = f"{base}.{suffix}"
    return candidate
