"""What every part of the SQL store shares: the dialect, the worker-thread
transaction, the cursor that speaks `?` SQL, and how rows become values.

The SQL is written once with `?` placeholders; a Dialect supplies the
driver, its placeholder, row locking, many rows as one query's parameters
(unnest of arrays, or VALUES lists), bulk insert, and which driver errors
mean what. Every call runs in a worker thread, inside one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar

import trio

from chatd.errors import Conflict, StoreUnavailable
from chatd.model import Message, MessageId, Room, RoomId, UserId
from chatd.tracing import TRACE, store_span

log = logging.getLogger(__name__)

T = TypeVar("T")

ROOM_COLUMNS = "id, name, visibility, owner_id, created_at, kind, last_seq, closed_at"
MESSAGE_COLUMNS = (
    "seq, room_id, user_id, text, created_at, client_id,"
    " kind, target_id, edited_at, deleted, mentions, reaction_count"
)
M_COLUMNS = ", ".join("m." + column.strip() for column in MESSAGE_COLUMNS.split(","))
R_COLUMNS = ", ".join("r." + column.strip() for column in ROOM_COLUMNS.split(","))


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    @property
    def rowcount(self) -> int: ...


class Dialect(Protocol):
    name: str
    placeholder: str
    for_update: str  # appended to a SELECT that must lock its rows
    integrity_errors: tuple[type[Exception], ...]
    unavailable_errors: tuple[type[Exception], ...]
    limiter: trio.CapacityLimiter

    def transaction(self, timeout_s: float | None = None) -> AbstractContextManager[Cursor]:
        """A cursor inside one transaction; waits at most timeout_s for a connection."""

    def row_queries(
        self, types: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> Iterator[tuple[str, Sequence[Any]]]:
        """Queries whose results are these rows, with their parameters.

        As few queries as the driver's parameter limit allows (PostgreSQL: one,
        whatever the number of rows); none for no rows. `types` are the columns'
        PostgreSQL type names. The SQL may already be in the driver's placeholders.
        """

    def insert_rows(
        self,
        cur: Cursor,
        table: str,
        columns: Sequence[str],
        types: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        """Insert many rows in as few round trips as the driver allows."""

    def to_datetime(self, value: Any) -> datetime: ...
    def close(self) -> None: ...


class SqlBase:
    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._sql_cache: dict[str, str] = {}
        self._events_committed: Callable[[], None] | None = None
        self._trio_token: trio.lowlevel.TrioToken | None = None

    def on_events_committed(self, hook: Callable[[], None] | None) -> None:
        """Call `hook` in the event loop after each commit that wrote an event (the
        relay's wake-up: chatd/events/relay.py). Set it from the event loop."""
        self._trio_token = None if hook is None else trio.lowlevel.current_trio_token()
        self._events_committed = hook

    # -- plumbing ---------------------------------------------------------

    def _sql(self, sql: str) -> str:
        if self._dialect.placeholder == "?":
            return sql
        cached = self._sql_cache.get(sql)
        if cached is None:
            cached = self._sql_cache[sql] = sql.replace("?", self._dialect.placeholder)
        return cached

    def _in_transaction(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        dialect = self._dialect
        try:
            with dialect.transaction() as cur:
                sql_cur = SqlCursor(cur, self._sql)
                result = fn(sql_cur, *args)
        except dialect.integrity_errors as exc:
            raise Conflict(_conflict_message(exc)) from exc
        except dialect.unavailable_errors as exc:
            log.warning("%s store unavailable: %s", dialect.name, exc)
            raise StoreUnavailable("the database is not answering; try again") from exc
        hook, token = self._events_committed, self._trio_token
        if sql_cur.recorded_events and hook is not None and token is not None:
            token.run_sync_soon(hook)  # from this worker thread; never blocks
        return result

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if TRACE.on:
            # Current in the worker thread too (it runs in a copy of this context), so
            # record_event() there fills the outbox row's traceparent from it.
            with store_span(fn, self._dialect.name):
                return await trio.to_thread.run_sync(
                    self._in_transaction, fn, args, limiter=self._dialect.limiter
                )
        return await trio.to_thread.run_sync(
            self._in_transaction, fn, args, limiter=self._dialect.limiter
        )

    def _room(self, row: Any, member_ids: Sequence[UserId] = ()) -> Room:
        """A row of ROOM_COLUMNS."""
        return Room(
            id=RoomId(row[0]),
            name=row[1],
            visibility=row[2],
            owner_id=None if row[3] is None else UserId(row[3]),
            created_at=self._dialect.to_datetime(row[4]),
            kind=row[5],
            last_message_id=int(row[6]),
            member_ids=tuple(member_ids),
            closed_at=None if row[7] is None else self._dialect.to_datetime(row[7]),
        )

    def _message(self, row: Any) -> Message:
        """A row of MESSAGE_COLUMNS."""
        to_datetime = self._dialect.to_datetime
        return Message(
            id=MessageId(row[0]),
            room_id=RoomId(row[1]),
            user_id=UserId(row[2]),
            text=row[3],
            created_at=to_datetime(row[4]),
            client_id=row[5],
            kind=row[6],
            target_id=None if row[7] is None else MessageId(row[7]),
            edited_at=None if row[8] is None else to_datetime(row[8]),
            deleted=bool(row[9]),
            mentions=parse_ids(row[10]),
            count=row[11],
        )


class SqlCursor:
    """A driver cursor that speaks the shared `?` SQL."""

    def __init__(self, cur: Cursor, translate: Callable[[str], str]) -> None:
        self._cur = cur
        self._translate = translate
        # Set by store/outbox.py's record_event(): this transaction wrote an event.
        self.recorded_events = False

    @property
    def raw(self) -> Cursor:
        """The driver's own cursor, for the dialect's bulk operations."""
        return self._cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cur.execute(self._translate(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cur.executemany(self._translate(sql), rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self._cur.execute(self._translate(sql), params)
        return self._cur.fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self._cur.execute(self._translate(sql), params)
        return list(self._cur.fetchall())


def parse_ids(stored: str | None) -> tuple[UserId, ...]:
    """User ids as a message row keeps them (its mentions): comma-separated."""
    return tuple(UserId(int(part)) for part in stored.split(",")) if stored else ()


def format_ids(ids: Sequence[int]) -> str | None:
    return ",".join(map(str, ids)) if ids else None


def _conflict_message(exc: Exception) -> str:
    text = str(exc).lower()
    if "email" in text:
        return "that email is already registered"
    return "that already exists"
