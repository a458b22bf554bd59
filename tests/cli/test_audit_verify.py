"""``countersign audit verify``: exit 0 for an intact file, 1 naming the tampered line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cli.main import main
from countersign.audit_export import export_file
from tests.security.trails import trail


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    export_file(trail("run-a"), path)
    return path


def test_audit_verify_intact_exits_0(exported: Path) -> None:
    code, out = run("audit", "verify", str(exported))

    assert code == 0
    assert out == "run run-a: 5 events, chain intact\nOK\n"


def test_audit_verify_tampered_exits_1(exported: Path) -> None:
    lines = exported.read_text().splitlines(keepends=True)
    event = json.loads(lines[3])
    event["detail"] = "nothing happened"
    lines[3] = json.dumps(event) + "\n"
    exported.write_text("".join(lines))

    code, out = run("audit", "verify", str(exported))

    assert code == 1
    assert "TAMPERED run run-a, line 4 (seq 3): event was changed" in out
    assert out.endswith("FAILED: the trail was changed\n")


def test_audit_verify_json_reports_break(exported: Path) -> None:
    lines = exported.read_text().splitlines(keepends=True)
    del lines[1]
    exported.write_text("".join(lines))

    code, out = run("audit", "verify", str(exported), "--json")

    body = json.loads(out)
    assert code == 1
    assert body["ok"] is False
    broken = body["runs"][0]["broken"]
    assert (broken["line"], broken["seq"], broken["kind"]) == (2, 2, "removed")


def test_audit_verify_missing_file_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("audit", "verify", str(tmp_path / "absent.jsonl"))

    assert code == 1
    assert capsys.readouterr().err.startswith("countersign: error: cannot read ")
