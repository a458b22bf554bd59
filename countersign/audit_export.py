"""Export audit trails as JSON lines, and verify an exported file.

One line per ``AuditEvent``, in ``seq`` order per run; a file may hold several
runs, interleaved or not. Verification groups the lines by ``run_id`` (keeping
file order) and walks each run's hash chain with
``countersign.digest.first_broken_link``, naming the first event that was
changed, removed or moved: run id, line number and seq.

The chain proves every kept event and its order; it cannot tell that the
*last* events of a trail were cut off (a truncated trail is a valid shorter
chain). Compare the final hash with the live trail
(``GET /agents/{agent}/runs/{run}/audit``) to rule that out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, ValidationError

from countersign.digest import GENESIS_HASH, audit_event_hash, first_broken_link
from countersign.models import AuditEvent


class BreakKind(StrEnum):
    """How a trail was found to differ from what was recorded."""

    UNREADABLE = "unreadable"
    CHANGED = "changed"
    REMOVED = "removed"
    REORDERED = "reordered"


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

    @property
    def ok(self) -> bool:
        """Whether every line was read and every chain is intact."""
        return not self.unreadable and all(r.broken is None for r in self.runs)

    @property
    def breaks(self) -> list[ChainBreak]:
        """Every problem found, unreadable lines first."""
        return self.unreadable + [r.broken for r in self.runs if r.broken is not None]


def write_jsonl(events: Iterable[AuditEvent], out: TextIO) -> int:
    """Write events as JSON lines.

    Args:
        events: One or more runs' trails, each in ``seq`` order.
        out: A text stream.

    Returns:
        The number of lines written.
    """
    count = 0
    for event in events:
        out.write(event.model_dump_json())
        out.write("\n")
        count += 1
    return count


def export_file(events: Iterable[AuditEvent], path: Path) -> int:
    """Write events to ``path`` as JSON lines (see :func:`write_jsonl`)."""
    with path.open("w", encoding="utf-8") as out:
        return write_jsonl(events, out)


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


def verify_lines(lines: Iterable[str]) -> VerifyReport:
    """Verify JSON-lines text (see :func:`verify_file`)."""
    trails: dict[str, _Trail] = {}
    unreadable: list[ChainBreak] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            event = AuditEvent.model_validate(json.loads(text))
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
    return VerifyReport(runs=runs, unreadable=unreadable)


def verify_file(path: Path) -> VerifyReport:
    """Verify an exported audit file.

    Args:
        path: A JSON-lines file written by :func:`write_jsonl`.

    Returns:
        One summary per run (the first broken link of each, if any) and the
        lines that could not be read as audit events.

    Raises:
        OSError: When the file cannot be read.
    """
    with path.open(encoding="utf-8") as fh:
        return verify_lines(fh)
