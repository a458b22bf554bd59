"""Canonical JSON and the hashes built on it.

Pure functions with no I/O, safe to call from workflow code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from pydantic import JsonValue

from countersign.models import AuditEvent

GENESIS_HASH = "0" * 64


def canonical_json(value: JsonValue) -> str:
    """Serialise ``value`` the same way every time: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def args_digest(args: dict[str, JsonValue]) -> str:
    """SHA-256 of the canonical JSON of a call's arguments (``args_digest``)."""
    return hashlib.sha256(canonical_json(args).encode()).hexdigest()


def audit_event_hash(event: AuditEvent) -> str:
    """The hash an audit event must carry, given its ``prev_hash`` and content."""
    body = event.model_dump(mode="json", exclude={"hash"})
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def first_broken_link(events: Iterable[AuditEvent]) -> int | None:
    """Check an audit trail's hash chain.

    Args:
        events: The trail of one run, in order.

    Returns:
        The index of the first event that was changed, removed or moved, or
        ``None`` when the chain is intact.
    """
    prev = GENESIS_HASH
    for index, event in enumerate(events):
        if event.seq != index or event.prev_hash != prev or audit_event_hash(event) != event.hash:
            return index
        prev = event.hash
    return None
