"""SQLite, the embedded default: one connection, one thread at a time."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from chatd.store.sql import SqlStore
from chatd.store.sqlbase import Cursor


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
    # Parameters per statement: SQLite's limit before 3.32, and so safe with any build.
    max_params = 999

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

    def row_queries(
        self, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> Iterator[tuple[str, Sequence[Any]]]:
        width = len(types)
        row_sql = "(" + ", ".join("?" * width) + ")"
        step = max(1, self.max_params // width)
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            yield "VALUES " + ", ".join([row_sql] * len(chunk)), [v for row in chunk for v in row]

    def insert_rows(
        self,
        cur: Cursor,
        table: str,
        columns: Sequence[str],
        types: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        # In-process, executemany costs no round trips and beats a long VALUES list.
        placeholders = ", ".join("?" * len(columns))
        cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows)

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
