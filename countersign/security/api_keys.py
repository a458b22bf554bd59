"""API keys: created once, stored hashed, looked up in constant time.

A key looks like ``csk_<key id>_<secret>``. The key id (16 hex digits) is not
secret: it names the key in listings and revocations. The secret is 256 random
bits, so a plain SHA-256 of the whole key is a sound hash at rest (no password
stretching is needed for a value that cannot be guessed). The key itself is
shown once, when it is created, and never written anywhere.

The store is one JSON file (``COUNTERSIGN_API_KEYS_FILE``), mode 0600, replaced
atomically on every change and guarded by a lock file so that two CLI
invocations do not lose each other's writes.

Replicas share it: every API process reads the same file (a shared volume, or a
Kubernetes Secret or ConfigMap mounted read-only) and reloads it when it
changes, checking its inode, modification time and size at most once per
``check_interval`` (one second), so ``countersign keys create``/``revoke`` on
one replica, or an operator updating the mounted secret, reaches every replica
within about a second, without a restart. Readers never write: a read-only
mount is enough for the API; the CLI needs the file's directory writable.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from countersign.models import Principal

logger = logging.getLogger(__name__)

KEY_PREFIX = "csk_"
#: API-key principals are ``key:<principal_id>``, apart from JWT subjects of the same name.
KEY_PRINCIPAL_PREFIX = "key:"
_KEY_ID_HEX = 16
# 124 characters at most, so that ``key:<id>`` fits the 128-character id cap.
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,123}$")
_ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}([0-9a-f]{{{_KEY_ID_HEX}}})_[A-Za-z0-9_-]{{20,}}$")


class ApiKeyError(Exception):
    """A key store operation failed (bad input, unknown key, unreadable file)."""


class ApiKeyRecord(BaseModel):
    """One stored key: everything but the key itself."""

    key_id: str
    hash: str = Field(description="'sha256:' and the hex SHA-256 of the whole key")
    principal_id: str
    roles: list[str]
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Whether the key still authenticates."""
        return self.revoked_at is None

    def principal(self) -> Principal:
        """The principal this key authenticates as: ``key:<principal_id>``."""
        return Principal(id=KEY_PRINCIPAL_PREFIX + self.principal_id, roles=tuple(self.roles))


class ApiKeyFile(BaseModel):
    """The on-disk format of the key store."""

    version: int = 1
    keys: list[ApiKeyRecord] = Field(default_factory=list)


class CreatedKey(BaseModel):
    """A newly created key: the record and the key, which is shown only now."""

    record: ApiKeyRecord
    key: str


def hash_key(key: str) -> str:
    """The at-rest hash of a key."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def looks_like_api_key(credential: str) -> bool:
    """Whether a bearer credential has the shape of one of our API keys."""
    return _KEY_PATTERN.match(credential) is not None


def parse_roles(text: str) -> list[str]:
    """Split and check a comma-separated role list (``approver,viewer``).

    Raises:
        ApiKeyError: When a role name is malformed or the list is empty.
    """
    roles = [r.strip() for r in text.split(",") if r.strip()]
    if not roles:
        raise ApiKeyError("at least one role is required")
    for role in roles:
        if not _ROLE_PATTERN.match(role):
            raise ApiKeyError(f"malformed role name: {role!r}")
    return list(dict.fromkeys(roles))


class ApiKeyStore:
    """The API key store at ``path``.

    Args:
        path: The JSON file (``settings.api_keys_file``); it need not exist yet.
        check_interval: Seconds between two checks of the file for changes.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        path: Path,
        *,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._check_interval = check_interval
        self._clock = clock
        self._cache_lock = threading.Lock()
        self._cache_stamp: tuple[int, int, int] | None = None
        self._checked_at: float | None = None
        self._cache: list[ApiKeyRecord] = []

    # Reading.

    def _read(self) -> ApiKeyFile:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ApiKeyFile()
        except OSError as exc:
            raise ApiKeyError(f"cannot read the API key file {self.path}: {exc}") from exc
        try:
            return ApiKeyFile.model_validate_json(text)
        except ValidationError as exc:
            raise ApiKeyError(f"the API key file {self.path} is malformed") from exc

    def records(self) -> list[ApiKeyRecord]:
        """Every key, revoked ones included, oldest first."""
        return self._read().keys

    def _active_records(self, *, fresh: bool = False) -> list[ApiKeyRecord]:
        # The API calls this on every request: look at the file at most once per
        # interval (unless ``fresh``), and read it only when it changed. stat()
        # follows symlinks, so a Kubernetes secret update (a swapped ..data
        # link) is a new inode.
        now = self._clock()
        with self._cache_lock:
            recent = self._checked_at is not None and now - self._checked_at < self._check_interval
            if recent and not fresh:
                return self._cache
            try:
                st = self.path.stat()
                stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp != self._cache_stamp or self._checked_at is None:
                self._cache = [r for r in self._read().keys if r.active]
                self._cache_stamp = stamp
            self._checked_at = now
            return self._cache

    def lookup(self, key: str) -> Principal | None:
        """The principal of a presented key, or ``None`` for an unknown or revoked key.

        Every active record is compared with ``hmac.compare_digest`` and the loop
        never stops early, so the time taken does not tell which key matched.
        A key found in the cache is accepted (a revocation shows within the
        check interval); a key not found makes the file be looked at again at
        once, so a key just created elsewhere works on its first use (the
        failed-login throttle bounds what unknown keys cost).

        Raises:
            ApiKeyError: When the key file cannot be read.
        """
        presented = hash_key(key).encode()
        found = _match(self._active_records(), presented)
        if found is None:
            found = _match(self._active_records(fresh=True), presented)
        return found.principal() if found is not None else None

    def current(self, principal_id: str) -> Principal | None:
        """The principal ``key:<id>`` as its active keys make it now, or ``None``.

        Its roles are those of all its active keys; ``None`` when it has none
        left (every key revoked) or the id is not an API-key principal. Decision
        links are checked against this when issued and when redeemed.
        """
        name = principal_id.removeprefix(KEY_PRINCIPAL_PREFIX)
        if name == principal_id:
            return None
        records = [r for r in self._active_records(fresh=True) if r.principal_id == name]
        if not records:
            return None
        roles = dict.fromkeys(role for r in records for role in r.roles)
        return Principal(id=principal_id, roles=tuple(roles))

    # Writing.

    @contextlib.contextmanager
    def _locked(self) -> Iterator[ApiKeyFile]:
        """Hold the store's lock file while reading, changing and writing it."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ApiKeyError(
                f"cannot change the API key file {self.path} here ({exc.strerror}): where it "
                "is mounted read-only, change it at its source (the secret or shared volume)"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self._read()
            yield data
            self._write(data)
            with self._cache_lock:
                # This process sees its own change at once, not a second later.
                self._checked_at = None
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write(self, data: ApiKeyFile) -> None:
        # Write a private temporary file next to the target, then rename: readers
        # see the old file or the new one, never half of one.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data.model_dump_json(indent=2))
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def create(self, principal_id: str, roles: list[str]) -> CreatedKey:
        """Create a key for ``principal_id`` with ``roles``.

        Returns:
            The stored record and the key; the key is not kept anywhere.

        Raises:
            ApiKeyError: When the principal id or a role is malformed.
        """
        if not _ID_PATTERN.match(principal_id):
            raise ApiKeyError(f"malformed principal id: {principal_id!r}")
        if not roles:
            raise ApiKeyError("at least one role is required")
        for role in roles:
            if not _ROLE_PATTERN.match(role):
                raise ApiKeyError(f"malformed role name: {role!r}")
        key_id = secrets.token_hex(_KEY_ID_HEX // 2)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKeyRecord(
            key_id=key_id,
            hash=hash_key(key),
            principal_id=principal_id,
            roles=list(roles),
            created_at=datetime.now(UTC),
        )
        with self._locked() as data:
            data.keys.append(record)
        logger.info("created API key %s for %s", key_id, principal_id)
        return CreatedKey(record=record, key=key)

    def revoke(self, key_id: str) -> ApiKeyRecord:
        """Revoke a key by id; it stays listed, marked revoked.

        Raises:
            ApiKeyError: When no key has that id.
        """
        with self._locked() as data:
            for index, record in enumerate(data.keys):
                if record.key_id == key_id:
                    if record.revoked_at is None:
                        record = record.model_copy(update={"revoked_at": datetime.now(UTC)})
                        data.keys[index] = record
                    break
            else:
                raise ApiKeyError(f"no API key with id {key_id!r}")
        logger.info("revoked API key %s", key_id)
        return record


def _match(records: list[ApiKeyRecord], presented: bytes) -> ApiKeyRecord | None:
    found: ApiKeyRecord | None = None
    for record in records:
        if hmac.compare_digest(record.hash.encode(), presented):
            found = record
    return found
