"""Export audit trails as JSON lines, and verify an exported file.

One line per ``AuditEvent``, in ``seq`` order per run; a file may hold several
runs, interleaved or not. Verification groups the lines by ``run_id`` (keeping
file order) and walks each run's hash chain with
``countersign.digest.first_broken_link``, naming the first event that was
changed, removed or moved: run id, line number and seq.

The chain proves every kept event and its order, but alone it cannot tell a
trail whose last events were cut off (a valid shorter chain), nor one
re-hashed from the genesis value after a change. So the API signs each run's
*head* (run id, event count, last hash) with ``COUNTERSIGN_AUDIT_HEAD_KEY``, a
key that never enters Temporal, and the export ends each run with a
``{"head": ...}`` line. :func:`verify_lines` with that key refuses an empty
file, a run without a head, a trail that does not end where its head says,
and a head signed with another key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, ValidationError

from countersign.digest import GENESIS_HASH, audit_event_hash, canonical_json, first_broken_link
from countersign.models import AuditEvent


class BreakKind(StrEnum):
    """How a trail was found to differ from what was recorded."""

    UNREADABLE = "unreadable"
    CHANGED = "changed"
    REMOVED = "removed"
    REORDERED = "reordered"
    EMPTY = "empty"
    UNSIGNED = "unsigned"
    TRUNCATED = "truncated"
    FORGED = "forged"


class AuditHead(BaseModel):
    """A run's trail as the API saw it: how many events, the last hash, signed.

    ``signature`` is HMAC-SHA256 with ``COUNTERSIGN_AUDIT_HEAD_KEY`` over the
    canonical JSON of the other fields.
    """

    run_id: str
    events: int
    last_hash: str
    signature: str

    @classmethod
    def sign(cls, run_id: str, events: list[AuditEvent], key: str) -> AuditHead:
        """The signed head of ``events`` (one run's whole trail, in order)."""
        last = events[-1].hash if events else GENESIS_HASH
        return cls(
            run_id=run_id,
            events=len(events),
            last_hash=last,
            signature=_head_mac(key, run_id, len(events), last),
        )

    def signed_with(self, key: str) -> bool:
        """Whether ``key`` made this head's signature."""
        expected = _head_mac(key, self.run_id, self.events, self.last_hash)
        return hmac.compare_digest(self.signature, expected)


def _head_mac(key: str, run_id: str, events: int, last_hash: str) -> str:
    body = canonical_json({"run_id": run_id, "events": events, "last_hash": last_hash})
    return hmac.new(key.encode(), body.encode(), hashlib.sha256).hexdigest()


class ChainBreak(BaseModel):
    """The first broken link of one run's trail.

    Attributes:
        run_id: The run (``None`` for a line that could not be read at all).
        line: 1-based line number in the file.
        seq: The seq the line carries (``None`` when unreadable).
        expected_seq: The seq that should be at that position.
        kind: Changed, removed, reordered or unreadable.
        message: A sentence for people.
    """

    run_id: str | None
    line: int
    seq: int | None
    expected_seq: int | None
    kind: BreakKind
    message: str


class RunSummary(BaseModel):
    """What verification found for one run."""

    run_id: str
    events: int
    last_hash: str
    broken: ChainBreak | None = None


class VerifyReport(BaseModel):
    """The outcome of verifying a file."""

    runs: list[RunSummary]
    unreadable: list[ChainBreak]
    #: Trails that do not match their signed head (or lack one, or the file is empty).
    heads: list[ChainBreak] = []

    @property
    def ok(self) -> bool:
        """Whether there were events, every line was read, every chain and head holds."""
        return (
            bool(self.runs)
            and not self.unreadable
            and not self.heads
            and all(r.broken is None for r in self.runs)
        )

    @property
    def breaks(self) -> list[ChainBreak]:
        """Every problem found, unreadable lines first."""
        broken = [r.broken for r in self.runs if r.broken is not None]
        return self.unreadable + broken + self.heads


def write_jsonl(events: Iterable[AuditEvent], out: TextIO, heads: Iterable[AuditHead] = ()) -> int:
    """Write events as JSON lines, then each run's signed head as a ``{"head": ...}`` line.

    Args:
        events: One or more runs' trails, each in ``seq`` order.
        out: A text stream.
        heads: The API's signed heads of those runs.

    Returns:
        The number of events written.
    """
    count = 0
    for event in events:
        out.write(event.model_dump_json())
        out.write("\n")
        count += 1
    for head in heads:
        out.write(json.dumps({"head": head.model_dump(mode="json")}))
        out.write("\n")
    return count


def export_file(events: Iterable[AuditEvent], path: Path, heads: Iterable[AuditHead] = ()) -> int:
    """Write events and heads to ``path`` as JSON lines (see :func:`write_jsonl`)."""
    with path.open("w", encoding="utf-8") as out:
        return write_jsonl(events, out, heads)


@dataclass
class _Trail:
    events: list[AuditEvent] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


def _diagnose(run_id: str, trail: _Trail, index: int) -> ChainBreak:
    event = trail.events[index]
    line = trail.lines[index]
    prev_hash = trail.events[index - 1].hash if index else GENESIS_HASH
    where = f"run {run_id}, line {line} (seq {event.seq})"
    if audit_event_hash(event) != event.hash:
        kind = BreakKind.CHANGED
        message = f"{where}: event was changed (its hash does not match its content)"
    elif event.seq > index:
        later = [i for i in range(index + 1, len(trail.events)) if trail.events[i].seq == index]
        if later:
            kind = BreakKind.REORDERED
            message = (
                f"{where}: event is out of order (seq {index} comes later, "
                f"at line {trail.lines[later[0]]})"
            )
        else:
            kind = BreakKind.REMOVED
            missing = f"seq {index}" if event.seq == index + 1 else f"seqs {index}..{event.seq - 1}"
            message = f"{where}: {missing} removed before this event"
    elif event.seq < index:
        kind = BreakKind.REORDERED
        message = f"{where}: event is out of order (expected seq {index})"
    elif event.prev_hash != prev_hash and index > 0:
        # Right seq, intact content, wrong predecessor: the event before it was
        # changed and its hash recomputed, so the break shows one link later.
        kind = BreakKind.CHANGED
        previous_line = trail.lines[index - 1]
        message = (
            f"run {run_id}, line {previous_line} (seq {index - 1}): event was changed and "
            f"re-hashed (line {line}, seq {event.seq}, no longer follows it)"
        )
        line = previous_line
        index -= 1
        event = trail.events[index]
    else:
        kind = BreakKind.CHANGED
        message = f"{where}: the first event does not start the chain"
    return ChainBreak(
        run_id=run_id,
        line=line,
        seq=event.seq,
        expected_seq=index,
        kind=kind,
        message=message,
    )


def verify_lines(lines: Iterable[str], head_key: str | None = None) -> VerifyReport:
    """Verify JSON-lines text (see :func:`verify_file`)."""
    trails: dict[str, _Trail] = {}
    heads: dict[str, tuple[int, AuditHead]] = {}
    unreadable: list[ChainBreak] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            raw = json.loads(text)
            if isinstance(raw, dict) and set(raw) == {"head"}:
                head = AuditHead.model_validate(raw["head"])
                heads[head.run_id] = (number, head)
                continue
            event = AuditEvent.model_validate(raw)
        except (ValueError, ValidationError) as exc:
            reason = str(exc).splitlines()[0]
            unreadable.append(
                ChainBreak(
                    run_id=None,
                    line=number,
                    seq=None,
                    expected_seq=None,
                    kind=BreakKind.UNREADABLE,
                    message=f"line {number}: not an audit event ({reason})",
                )
            )
            continue
        trail = trails.setdefault(event.run_id, _Trail())
        trail.events.append(event)
        trail.lines.append(number)
    runs: list[RunSummary] = []
    for run_id, trail in trails.items():
        index = first_broken_link(trail.events)
        runs.append(
            RunSummary(
                run_id=run_id,
                events=len(trail.events),
                last_hash=trail.events[-1].hash,
                broken=None if index is None else _diagnose(run_id, trail, index),
            )
        )
    return VerifyReport(runs=runs, unreadable=unreadable, heads=_check_heads(runs, heads, head_key))


def _check_heads(
    runs: list[RunSummary], heads: dict[str, tuple[int, AuditHead]], key: str | None
) -> list[ChainBreak]:
    """Each run against its signed head: all of them when ``key`` is given.

    Without the key a head still shows a cut-off trail, but only the key tells
    a real head from one written after re-hashing the trail from genesis.
    """
    problems: list[ChainBreak] = []

    def problem(run_id: str | None, line: int, kind: BreakKind, message: str) -> None:
        problems.append(
            ChainBreak(
                run_id=run_id, line=line, seq=None, expected_seq=None, kind=kind, message=message
            )
        )

    if not runs:
        problem(None, 0, BreakKind.EMPTY, "the file holds no audit events")
    for run in runs:
        line, head = heads.get(run.run_id, (0, None))
        if head is None:
            if key is not None:
                problem(run.run_id, 0, BreakKind.UNSIGNED, f"run {run.run_id}: no signed head")
            continue
        if key is not None and not head.signed_with(key):
            problem(
                run.run_id,
                line,
                BreakKind.FORGED,
                f"run {run.run_id}, line {line}: the head's signature is not the API's",
            )
        elif (head.events, head.last_hash) != (run.events, run.last_hash):
            problem(
                run.run_id,
                line,
                BreakKind.TRUNCATED,
                f"run {run.run_id}: the trail holds {run.events} events, its head says"
                f" {head.events} ending {head.last_hash[:12]}: events were cut off or replaced",
            )
    for run_id, (line, head) in heads.items():
        if all(r.run_id != run_id for r in runs):
            problem(
                run_id,
                line,
                BreakKind.TRUNCATED,
                f"run {run_id}: its head says {head.events} events, the file holds none",
            )
    return problems


def verify_file(path: Path, head_key: str | None = None) -> VerifyReport:
    """Verify an exported audit file.

    Args:
        path: A JSON-lines file written by :func:`write_jsonl`.
        head_key: ``COUNTERSIGN_AUDIT_HEAD_KEY``: every run must then end as
            its head, signed with it, says.

    Returns:
        One summary per run (the first broken link of each, if any) and the
        lines that could not be read as audit events.

    Raises:
        OSError: When the file cannot be read.
    """
    with path.open(encoding="utf-8") as fh:
        return verify_lines(fh, head_key)
