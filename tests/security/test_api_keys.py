"""API keys: created once, hashed at rest, looked up, revoked."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from countersign.models import Principal
from countersign.security.api_keys import (
    ApiKeyError,
    ApiKeyStore,
    hash_key,
    looks_like_api_key,
    parse_roles,
)


@pytest.fixture
def store(tmp_path: Path) -> ApiKeyStore:
    return ApiKeyStore(tmp_path / "keys" / "api_keys.json")


def test_create_returns_key_that_authenticates(store: ApiKeyStore) -> None:
    created = store.create("alice", ["approver", "viewer"])

    assert looks_like_api_key(created.key)
    assert created.key.startswith(f"csk_{created.record.key_id}_")
    assert store.lookup(created.key) == Principal(id="alice", roles=("approver", "viewer"))


def test_create_stores_only_the_hash(store: ApiKeyStore) -> None:
    created = store.create("alice", ["approver"])

    text = store.path.read_text()
    secret_part = created.key.rsplit("_", 1)[-1]
    assert created.key not in text
    assert secret_part not in text
    assert hash_key(created.key) in text
    assert '"principal_id": "alice"' in text


def test_create_writes_file_mode_0600(store: ApiKeyStore) -> None:
    store.create("alice", ["approver"])

    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_create_keeps_earlier_keys(store: ApiKeyStore) -> None:
    first = store.create("alice", ["approver"])
    second = store.create("bob", ["requester"])

    assert [r.key_id for r in store.records()] == [first.record.key_id, second.record.key_id]
    assert store.lookup(first.key) == Principal(id="alice", roles=("approver",))
    assert store.lookup(second.key) == Principal(id="bob", roles=("requester",))


def test_lookup_wrong_key_returns_none(store: ApiKeyStore) -> None:
    created = store.create("alice", ["approver"])
    forged = created.key[:-4] + ("AAAA" if not created.key.endswith("AAAA") else "BBBB")

    assert store.lookup(forged) is None
    assert store.lookup("csk_0000000000000000_" + "x" * 43) is None


def test_lookup_without_file_returns_none(store: ApiKeyStore) -> None:
    assert store.lookup("csk_0000000000000000_" + "x" * 43) is None


def test_revoke_stops_the_key_and_keeps_the_record(store: ApiKeyStore) -> None:
    created = store.create("alice", ["approver"])
    kept = store.create("bob", ["approver"])
    assert store.lookup(created.key) is not None

    revoked = store.revoke(created.record.key_id)

    assert revoked.revoked_at is not None
    assert store.lookup(created.key) is None
    assert store.lookup(kept.key) is not None
    [listed, _] = store.records()
    assert listed.key_id == created.record.key_id
    assert listed.revoked_at is not None


def test_revoke_seen_by_a_second_store_on_the_same_file(store: ApiKeyStore) -> None:
    created = store.create("alice", ["approver"])
    api_side = ApiKeyStore(store.path)
    assert api_side.lookup(created.key) is not None

    store.revoke(created.record.key_id)

    assert api_side.lookup(created.key) is None


def test_revoke_unknown_id_raises(store: ApiKeyStore) -> None:
    store.create("alice", ["approver"])
    before = store.path.read_bytes()

    with pytest.raises(ApiKeyError, match="no API key with id 'nope'"):
        store.revoke("nope")
    assert store.path.read_bytes() == before


def test_create_malformed_principal_raises(store: ApiKeyStore) -> None:
    with pytest.raises(ApiKeyError, match="malformed principal id"):
        store.create("al ice", ["approver"])
    assert not store.path.exists()


def test_parse_roles_malformed_raises() -> None:
    assert parse_roles("approver, viewer,approver") == ["approver", "viewer"]
    with pytest.raises(ApiKeyError, match="malformed role name"):
        parse_roles("approver,Bad Role")
    with pytest.raises(ApiKeyError, match="at least one role"):
        parse_roles(" , ")


def test_lookup_malformed_file_raises(store: ApiKeyStore) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json")

    with pytest.raises(ApiKeyError, match="malformed"):
        store.lookup("csk_0000000000000000_" + "x" * 43)
