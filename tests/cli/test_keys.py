"""``countersign keys``: create prints the key once, list hides secrets, revoke."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cli.main import main
from countersign.security.api_keys import ApiKeyStore


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "keys.json"


def test_keys_create_prints_key_once_and_stores_hash(
    key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(
        "keys", "create", "--id", "alice", "--roles", "approver,viewer", "--file", str(key_file)
    )

    key = out.strip()
    assert code == 0
    assert key.startswith("csk_")
    assert "only time the key is shown" in capsys.readouterr().err
    assert key not in key_file.read_text()
    principal = ApiKeyStore(key_file).lookup(key)
    assert principal is not None
    assert (principal.id, principal.roles) == ("key:alice", ("approver", "viewer"))


def test_keys_create_bad_role_fails(key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(
        "keys", "create", "--id", "alice", "--roles", "Not A Role", "--file", str(key_file)
    )

    assert code == 1
    assert out == ""
    assert capsys.readouterr().err == "countersign: error: malformed role name: 'Not A Role'\n"
    assert not key_file.exists()


def test_keys_list_shows_no_secret(key_file: Path) -> None:
    _, created = run(
        "--json", "keys", "create", "--id", "bob", "--roles", "requester", "--file", str(key_file)
    )
    key = json.loads(created)["key"]

    code, table = run("keys", "list", "--file", str(key_file))
    _, as_json = run("keys", "list", "--file", str(key_file), "--json")

    assert code == 0
    assert key not in table
    assert key not in as_json
    [listed] = json.loads(as_json)
    assert listed["principal_id"] == "bob"
    assert "hash" not in listed
    assert listed["key_id"] in table
    assert "bob" in table


def test_keys_revoke_stops_the_key(key_file: Path) -> None:
    _, created = run(
        "--json", "keys", "create", "--id", "bob", "--roles", "requester", "--file", str(key_file)
    )
    body = json.loads(created)

    code, out = run("keys", "revoke", body["key_id"], "--file", str(key_file))

    assert code == 0
    assert out == f"revoked {body['key_id']} (bob)\n"
    assert ApiKeyStore(key_file).lookup(body["key"]) is None
    _, listed = run("keys", "list", "--json", "--file", str(key_file))
    assert json.loads(listed)[0]["revoked_at"] is not None


def test_keys_revoke_unknown_fails(key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run("keys", "revoke", "0000", "--file", str(key_file))

    assert code == 1
    assert capsys.readouterr().err == "countersign: error: no API key with id '0000'\n"


def test_keys_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "env-keys.json"
    monkeypatch.setenv("COUNTERSIGN_API_KEYS_FILE", str(path))

    code, out = run("keys", "create", "--id", "carol", "--roles", "admin")

    assert code == 0
    assert ApiKeyStore(path).lookup(out.strip()) is not None
