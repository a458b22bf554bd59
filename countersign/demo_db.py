"""A small SQLite database that gives the demo tools real, observable effects.

Each effect is recorded under its idempotency key in the same transaction as
the effect itself, so a retried tool activity finds the first result and does
not delete or notify twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED_TABLES: dict[str, int] = {"users": 1000, "orders": 500, "sessions": 2000}


@dataclass(frozen=True)
class Notification:
    """A row of the notification outbox."""

    idempotency_key: str
    recipient: str
    channel: str
    message: str


class DemoDatabase:
    """The demo database at ``path``; creates and seeds it on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per operation: tools run in worker threads, and SQLite
        # connections must not cross threads.
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            # WAL is a property of the file (set once in ensure_seeded). NORMAL
            # syncs at checkpoints, not at every commit: a killed worker loses no
            # committed effect or key, only a power loss could.
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        finally:
            conn.close()

    def ensure_seeded(self) -> None:
        """Create the tables and fill the record tables, once."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS tool_effects (idempotency_key TEXT PRIMARY KEY,"
                " tool_name TEXT NOT NULL, result TEXT NOT NULL, created_at TEXT NOT NULL)"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY,"
                " idempotency_key TEXT UNIQUE NOT NULL, recipient TEXT NOT NULL,"
                " channel TEXT NOT NULL, message TEXT NOT NULL, created_at TEXT NOT NULL)"
            )
            for table, rows in SEED_TABLES.items():
                exists = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)
                ).fetchone()
                if exists:
                    continue
                conn.execute(
                    f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, label TEXT NOT NULL,"
                    " created_at TEXT NOT NULL)"
                )
                start = datetime(2020, 1, 1, tzinfo=UTC)
                conn.executemany(
                    f"INSERT INTO {table} (label, created_at) VALUES (?, ?)",
                    (
                        (f"{table[:-1]}-{i}", (start + timedelta(hours=i)).isoformat())
                        for i in range(rows)
                    ),
                )
            conn.execute("COMMIT")

    def once(
        self, idempotency_key: str, tool_name: str, effect: Callable[[sqlite3.Connection], str]
    ) -> str:
        """Make ``effect`` once per key; later calls return the first result.

        The effect and the record of its key commit in one transaction, so a
        retry after a crash either finds the record or finds nothing done.
        """
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT result FROM tool_effects WHERE idempotency_key=?", (idempotency_key,)
                ).fetchone()
                if row is not None:
                    conn.execute("ROLLBACK")
                    return str(row[0])
                result = effect(conn)
                conn.execute(
                    "INSERT INTO tool_effects (idempotency_key, tool_name, result, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (idempotency_key, tool_name, result, datetime.now(UTC).isoformat()),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return result

    def delete_oldest(self, table: str, count: int, idempotency_key: str) -> str:
        """Delete the ``count`` oldest rows of ``table``, once per key.

        Raises:
            LookupError: ``table`` is not one of the demo tables.
        """
        if table not in SEED_TABLES:
            known = ", ".join(sorted(SEED_TABLES))
            raise LookupError(f"no table named {table!r} (tables: {known})")

        def delete(conn: sqlite3.Connection) -> str:
            deleted = conn.execute(
                f"DELETE FROM {table} WHERE id IN"
                f" (SELECT id FROM {table} ORDER BY created_at, id LIMIT ?)",
                (count,),
            ).rowcount
            remaining = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            return f"Deleted {deleted} records from {table} ({remaining} remain)"

        return self.once(idempotency_key, "delete_records", delete)

    def enqueue_notification(
        self, recipient: str, channel: str, message: str, idempotency_key: str
    ) -> str:
        """Put a notification in the outbox, once per key."""

        def enqueue(conn: sqlite3.Connection) -> str:
            cursor = conn.execute(
                "INSERT INTO outbox (idempotency_key, recipient, channel, message, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (idempotency_key, recipient, channel, message, datetime.now(UTC).isoformat()),
            )
            return f"Notification #{cursor.lastrowid} queued for {recipient} via {channel}"

        return self.once(idempotency_key, "send_notification", enqueue)

    def count(self, table: str) -> int:
        """Rows left in a demo table."""
        if table not in SEED_TABLES:
            raise LookupError(table)
        with self._connect() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def notifications(self) -> list[Notification]:
        """The outbox, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT idempotency_key, recipient, channel, message FROM outbox ORDER BY id"
            ).fetchall()
        return [Notification(*row) for row in rows]

    def effect_count(self, tool_name: str | None = None) -> int:
        """How many effects were made, in all or of one tool."""
        with self._connect() as conn:
            if tool_name is None:
                row = conn.execute("SELECT COUNT(*) FROM tool_effects").fetchone()
            else:
                row = conn.execute(
                    "SELECT COUNT(*) FROM tool_effects WHERE tool_name=?", (tool_name,)
                ).fetchone()
        return int(row[0])
