"""API keys: created once, hashed at rest, looked up, revoked."""

from __future__ import annotations

import os
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
    assert store.lookup(created.key) == Principal(id="key:alice", roles=("approver", "viewer"))


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
    assert store.lookup(first.key) == Principal(id="key:alice", roles=("approver",))
    assert store.lookup(second.key) == Principal(id="key:bob", roles=("requester",))


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


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_revoke_seen_by_a_second_store_after_its_check_interval(store: ApiKeyStore) -> None:
    created = store.create("alice", ["approver"])
    clock = Clock()
    api_side = ApiKeyStore(store.path, clock=clock)
    assert api_side.lookup(created.key) is not None

    store.revoke(created.record.key_id)
    # Within the interval the file is not even looked at: requests stay cheap.
    clock.now += 0.5
    still_cached = api_side.lookup(created.key)
    clock.now += 0.5
    reloaded = api_side.lookup(created.key)

    assert still_cached is not None
    assert reloaded is None


def test_key_created_elsewhere_works_on_first_use(store: ApiKeyStore) -> None:
    first = store.create("alice", ["approver"])
    clock = Clock()
    api_side = ApiKeyStore(store.path, clock=clock)
    assert api_side.lookup(first.key) is not None

    created = store.create("bob", ["viewer"])

    assert api_side.lookup(created.key) == Principal(id="key:bob", roles=("viewer",))


def test_unchanged_file_is_not_read_again(store: ApiKeyStore) -> None:
    created = store.create("alice", ["approver"])
    clock = Clock()
    api_side = ApiKeyStore(store.path, clock=clock)
    assert api_side.lookup(created.key) is not None
    # Same inode, size and time stamp, different content: only a re-read would see it.
    stat = store.path.stat()
    text = store.path.read_text()
    store.path.write_text(text.replace(created.record.hash, hash_key("csk_another")))
    os.utime(store.path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    clock.now += 5
    assert api_side.lookup(created.key) is not None


def test_key_file_replaced_through_a_symlink_is_reloaded(tmp_path: Path) -> None:
    # How a Kubernetes secret volume updates: a new directory, then the link swapped.
    writer_a = ApiKeyStore(tmp_path / "v1" / "api_keys.json")
    old = writer_a.create("alice", ["approver"])
    writer_b = ApiKeyStore(tmp_path / "v2" / "api_keys.json")
    new = writer_b.create("bob", ["approver"])
    link = tmp_path / "mounted.json"
    link.symlink_to(writer_a.path)
    clock = Clock()
    api_side = ApiKeyStore(link, clock=clock)
    assert api_side.lookup(old.key) is not None

    swap = tmp_path / "swap.json"
    swap.symlink_to(writer_b.path)
    os.replace(swap, link)
    clock.now += 1

    assert api_side.lookup(old.key) is None
    assert api_side.lookup(new.key) == Principal(id="key:bob", roles=("approver",))


def test_change_where_the_directory_is_not_writable_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = ApiKeyStore(blocker / "api_keys.json")

    with pytest.raises(ApiKeyError, match="cannot change the API key file"):
        store.create("alice", ["approver"])


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
