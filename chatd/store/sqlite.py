"""SQLite, the embedded default: one connection, one thread at a time."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from chatd.store.sql import SqlStore


def _adapt_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


# Stored as ISO-8601 text; the stdlib's implicit adapter is deprecated.
sqlite3.register_adapter(datetime, _adapt_datetime)


class SqliteDialect:
    name = "sqlite"
    placeholder = "?"
    for_update = ""  # BEGIN IMMEDIATE already holds the only write lock
    integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
    unavailable_errors: tuple[type[Exception], ...] = (sqlite3.OperationalError,)

    def __init__(self, path: Path, timeout_s: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            path, timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        # One connection serves every thread, so one thread at a time uses it.
        self.limiter = trio.CapacityLimiter(1)
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self, timeout_s: float | None = None) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    def to_datetime(self, value: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_sqlite_store(path: Path, timeout_s: float) -> SqlStore:
    return SqlStore(SqliteDialect(path, timeout_s))
