"""Audit export and verification: a changed, removed or moved event is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from countersign.audit_export import BreakKind, export_file, verify_file
from countersign.digest import audit_event_hash
from countersign.models import AuditEvent
from tests.security.trails import trail


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    export_file(trail("run-a") + trail("run-b"), path)
    return path


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_verify_intact_export_ok(exported: Path) -> None:
    report = verify_file(exported)

    assert report.ok
    assert [(r.run_id, r.events) for r in report.runs] == [("run-a", 5), ("run-b", 5)]


def test_verify_interleaved_runs_ok(tmp_path: Path) -> None:
    a, b = trail("run-a"), trail("run-b")
    path = tmp_path / "mixed.jsonl"
    export_file([e for pair in zip(a, b, strict=True) for e in pair], path)

    assert verify_file(path).ok


def test_verify_edited_field_names_event(exported: Path) -> None:
    lines = lines_of(exported)
    event = json.loads(lines[2])
    event["principal"]["id"] = "mallory"
    lines[2] = json.dumps(event) + "\n"
    exported.write_text("".join(lines))

    report = verify_file(exported)

    assert not report.ok
    [broken] = report.breaks
    assert (broken.run_id, broken.line, broken.seq, broken.kind) == (
        "run-a",
        3,
        2,
        BreakKind.CHANGED,
    )


def test_verify_edited_and_rehashed_names_event(exported: Path) -> None:
    lines = lines_of(exported)
    event = AuditEvent.model_validate_json(lines[1])
    forged = event.model_copy(update={"data": {"count": 5000}})
    forged = forged.model_copy(update={"hash": audit_event_hash(forged)})
    lines[1] = forged.model_dump_json() + "\n"
    exported.write_text("".join(lines))

    [broken] = verify_file(exported).breaks

    assert (broken.run_id, broken.line, broken.seq, broken.kind) == (
        "run-a",
        2,
        1,
        BreakKind.CHANGED,
    )


def test_verify_deleted_line_names_gap(exported: Path) -> None:
    lines = lines_of(exported)
    del lines[6]  # run-b, seq 1
    exported.write_text("".join(lines))

    [broken] = verify_file(exported).breaks

    assert (broken.run_id, broken.line, broken.seq, broken.expected_seq, broken.kind) == (
        "run-b",
        7,
        2,
        1,
        BreakKind.REMOVED,
    )
    assert "seq 1 removed" in broken.message


def test_verify_swapped_lines_names_reorder(exported: Path) -> None:
    lines = lines_of(exported)
    lines[2], lines[3] = lines[3], lines[2]
    exported.write_text("".join(lines))

    [broken] = verify_file(exported).breaks

    assert (broken.run_id, broken.line, broken.seq, broken.kind) == (
        "run-a",
        3,
        3,
        BreakKind.REORDERED,
    )
    assert "seq 2 comes later, at line 4" in broken.message


def test_verify_garbage_line_unreadable(exported: Path) -> None:
    with exported.open("a") as fh:
        fh.write("{not json}\n")

    report = verify_file(exported)

    [broken] = report.breaks
    assert (broken.line, broken.kind) == (11, BreakKind.UNREADABLE)
    assert all(r.broken is None for r in report.runs)
