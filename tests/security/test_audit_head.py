"""An exported trail ends with the API's signed head; ``audit verify`` holds it to that.

The hash chain alone accepts a trail cut short (a valid shorter chain) and
one re-hashed from the genesis value after a change. The head (run id, event
count, last hash) is signed with ``COUNTERSIGN_AUDIT_HEAD_KEY``, which never
enters Temporal, so neither passes ``countersign audit verify`` any more.
"""

from __future__ import annotations

import io
import json
import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from cli.main import main
from countersign.audit_export import AuditHead, export_file
from countersign.digest import GENESIS_HASH, audit_event_hash
from countersign.models import AuditEvent
from tests.scripted_openai import Call, ScriptedModel
from tests.security.conftest import AGENT, SecureFactory

HEAD_KEY = secrets.token_urlsafe(40)


def _verify(path: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["audit", "verify", str(path)], out=out)
    return code, out.getvalue()


def _rehashed(events: list[AuditEvent]) -> list[AuditEvent]:
    """The trail with its third event changed and every hash recomputed from genesis."""
    out: list[AuditEvent] = []
    prev = GENESIS_HASH
    for event in events:
        if event.seq == 2:
            event = event.model_copy(update={"detail": "nothing happened"})
        event = event.model_copy(update={"prev_hash": prev})
        event = event.model_copy(update={"hash": audit_event_hash(event)})
        out.append(event)
        prev = event.hash
    return out


@pytest.fixture
async def trail(
    secure_api: SecureFactory, model: ScriptedModel
) -> tuple[list[AuditEvent], AuditHead]:
    """A finished run's trail and head, read over HTTP from the API holding the head key."""
    async with secure_api(audit_head_key=SecretStr(HEAD_KEY)) as sec:
        sec.remember(HEAD_KEY)
        run = await sec.start(
            model, "rita", f"p {uuid.uuid4().hex}", Call("purge", {"target": "h"})
        )
        assert (await sec.approve("alice", run["tools"][0])).status_code == 200
        response = await sec.http.get(
            f"/agents/{AGENT}/runs/{run['run_id']}/audit", headers=sec.auth("vera")
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
    events = [AuditEvent.model_validate(e) for e in body["events"]]
    head = AuditHead.model_validate(body["head"])
    assert (head.run_id, head.events, head.last_hash) == (
        run["run_id"],
        len(events),
        events[-1].hash,
    )
    assert head.signed_with(HEAD_KEY)
    return events, head


@pytest.fixture(autouse=True)
def head_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUNTERSIGN_AUDIT_HEAD_KEY", HEAD_KEY)


def test_intact_export_verifies(trail: tuple[list[AuditEvent], AuditHead], tmp_path: Path) -> None:
    events, head = trail
    export_file(events, tmp_path / "a.jsonl", [head])

    code, out = _verify(tmp_path / "a.jsonl")

    assert code == 0, out
    assert out.endswith("chain intact\nOK\n")


def test_empty_export_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")

    code, out = _verify(tmp_path / "empty.jsonl")

    assert code == 1
    assert "holds no audit events" in out


def test_truncated_export_refused(
    trail: tuple[list[AuditEvent], AuditHead], tmp_path: Path
) -> None:
    events, head = trail
    export_file(events[:-1], tmp_path / "cut.jsonl", [head])
    export_file(events[:-1], tmp_path / "cut_headless.jsonl")

    cut = _verify(tmp_path / "cut.jsonl")
    headless = _verify(tmp_path / "cut_headless.jsonl")

    assert cut[0] == 1
    assert f"holds {len(events) - 1} events, its head says {len(events)}" in cut[1]
    assert headless[0] == 1
    assert "no signed head" in headless[1]


def test_rehashed_from_genesis_refused(
    trail: tuple[list[AuditEvent], AuditHead], tmp_path: Path
) -> None:
    events, head = trail
    forged = _rehashed(events)
    export_file(forged, tmp_path / "kept_head.jsonl", [head])
    # A new head for the new chain, signed with a key that is not the API's.
    other = AuditHead.sign(head.run_id, forged, secrets.token_urlsafe(40))
    export_file(forged, tmp_path / "new_head.jsonl", [other])

    kept = _verify(tmp_path / "kept_head.jsonl")
    new = _verify(tmp_path / "new_head.jsonl")

    assert kept[0] == 1
    assert "cut off or replaced" in kept[1]
    assert new[0] == 1
    assert "signature is not the API's" in new[1]
    # The chain alone would have passed both.
    assert "chain intact" in kept[1]
    assert json.loads((tmp_path / "new_head.jsonl").read_text().splitlines()[-1])["head"]
