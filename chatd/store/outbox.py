"""The outbox: events written in the transaction of their change, then numbered,
published and read back.

Every store method that commits a change calls record_event() (or, for the writer's
batches, record_message_events()) with its cursor before it returns: the event commits
with the change or not at all. Numbering, publishing and reading them back is the
relay's side (OutboxSql in this module's later half, chatd/events/relay.py): rows are
insert-only, and each published batch is one row of outbox_batches that numbers them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chatd.events.event import MESSAGE_EVENTS, VERSION, Event, EventType
from chatd.model import Message, RoomId, UserId
from chatd.store.sqlbase import Dialect, SqlBase, SqlCursor
from chatd.tracing import current_traceparent

_COLUMNS = ("type", "version", "room_id", "actor_id", "data", "traceparent", "created_at")
_TYPES = ("text", "integer", "bigint", "bigint", "text", "text", "timestamptz")


def record_event(
    cur: SqlCursor,
    type: EventType,
    *,
    room_id: RoomId | None,
    actor_id: UserId | None,
    data: dict[str, Any],
    now: datetime,
    traceparent: str | None = None,
) -> None:
    """One event of a change this transaction commits. With no `traceparent`, the
    current span's (the store call's, when tracing is on) continues into the stream."""
    cur.recorded_events = True
    if traceparent is None:
        traceparent = current_traceparent()
    cur.execute(
        "INSERT INTO outbox (type, version, room_id, actor_id, data, traceparent, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            type,
            VERSION,
            room_id,
            actor_id,
            json.dumps(data, ensure_ascii=False, separators=(",", ":")),
            traceparent,
            now,
        ),
    )


def record_message_events(
    cur: SqlCursor,
    dialect: Dialect,
    messages: Sequence[Message],
    traceparents: Sequence[str | None],
    now: datetime,
) -> None:
    """The events of a batch of sequence entries, in one round trip (the writer's path).
    `data` is each entry's JSON as the bus and clients see it, made once (Message.encoded)."""
    cur.recorded_events = True
    rows = [
        (
            MESSAGE_EVENTS[m.kind],
            VERSION,
            m.room_id,
            m.user_id,
            m.encoded,
            traceparent,
            now,
        )
        for m, traceparent in zip(messages, traceparents, strict=True)
    ]
    dialect.insert_rows(cur.raw, "outbox", _COLUMNS, _TYPES, rows)


# pg_try_advisory_xact_lock's key for "numbering and publishing the outbox": b"chatdrly".
RELAY_LOCK_KEY = int.from_bytes(b"chatdrly", "big")
_EVENT_COLUMNS = "type, version, room_id, actor_id, data, traceparent, created_at"
Publish = Callable[[list[Event]], None]


@dataclass(frozen=True, slots=True)
class _Order:
    """The order the relay numbers outbox rows in, as one dialect writes it, and how a
    place in it (a cursor: the key of the last row of a batch) is kept in outbox_batches."""

    key: str  # the rows' order, also the columns of a cursor
    cursor_columns: str  # outbox_batches' columns holding a batch's cursor
    cursor_values: str  # placeholders for a cursor's values
    after: str  # rows after a cursor: its parameters are cursor_params()
    through: str  # rows up to a cursor, that one included: cursor_params() too
    settled: str  # rows that nothing still running can sort before ("" = all committed)

    @property
    def width(self) -> int:
        return self.cursor_values.count("?")

    def cursor_params(self, cursor: Sequence[Any]) -> list[Any]:
        """The parameters of `after` and `through` for a cursor."""
        # PostgreSQL estimates a row comparison at a third of the table, and would scan
        # all of it to count a backlog of a few rows; the same bound on the leading
        # column alone lets it see a range of the index.
        return [cursor[0], *cursor] if self.width > 1 else list(cursor)


# PostgreSQL: (txid, row_id), and only rows of transactions older than every one still
# running (schema/postgres/0006_events.sql): none that commits later sorts before them.
_POSTGRES = _Order(
    key="txid, row_id",
    cursor_columns="last_txid, last_row_id",
    cursor_values="?::xid8, ?",
    after="txid >= ?::xid8 AND (txid, row_id) > (?::xid8, ?)",
    through="txid <= ?::xid8 AND (txid, row_id) <= (?::xid8, ?)",
    settled="txid < pg_snapshot_xmin(pg_current_snapshot())",
)
# SQLite: one writer at a time, so rows commit in row_id order.
_SQLITE = _Order(
    key="row_id",
    cursor_columns="last_row_id",
    cursor_values="?",
    after="row_id > ?",
    through="row_id <= ?",
    settled="",
)


class OutboxSql(SqlBase):
    """The relay's side of the outbox: number and publish; read back; prune.

    Outbox rows are never updated. Publishing a batch inserts one row into
    outbox_batches: "events first_id..last_id are the rows after the previous batch's
    cursor up to and including this one's", so an event's id is its place in the rows'
    order, counted from the batch that holds it.
    """

    @property
    def _order(self) -> _Order:
        return _POSTGRES if self._dialect.name == "postgres" else _SQLITE

    async def publish_events(self, publish: Publish, limit: int, now: datetime) -> int:
        """Number the next `limit` unpublished rows, hand them to `publish` (a blocking
        call, made in the worker thread), then record the batch: one transaction, so a
        `publish` that raises records nothing, and the next call numbers the same rows the
        same way. 0 if there are none, or if another relay (another instance) is at it."""
        count, _ = await self._run(self._publish_events, publish, limit, now)
        return count

    async def number_events(self, limit: int, now: datetime) -> tuple[int, int]:
        """publish_events() for a relay with nothing to hand the events to (no broker):
        the rows are counted, not read. (How many were numbered, the newest id then.)"""
        return await self._run(self._publish_events, None, limit, now)

    def _publish_events(
        self, cur: SqlCursor, publish: Publish | None, limit: int, now: datetime
    ) -> tuple[int, int]:
        order = self._order
        # One relay at a time in the whole service; the lock ends with the transaction.
        # (SQLite: the transaction began with BEGIN IMMEDIATE, store/sqlite.py; it already
        # holds the database's one write lock.)
        if (
            self._dialect.name == "postgres"
            and not cur.one("SELECT pg_try_advisory_xact_lock(?)", (RELAY_LOCK_KEY,))[0]
        ):
            return 0, 0
        latest = cur.one(
            f"SELECT last_id, {order.cursor_columns} FROM outbox_batches"
            " ORDER BY last_id DESC LIMIT 1"
        )
        last_id, conditions, params = 0, [order.settled] if order.settled else [], []
        if latest is not None:
            last_id = int(latest[0])
            conditions.append(order.after)
            params.extend(order.cursor_params(latest[1:]))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        columns = order.key if publish is None else f"{order.key}, {_EVENT_COLUMNS}"
        rows = cur.all(
            f"SELECT {columns} FROM outbox{where} ORDER BY {order.key} LIMIT ?", [*params, limit]
        )
        if not rows:
            return 0, last_id
        width = order.width
        if publish is not None:
            events = [
                self._event((event_id, *row[width:]))
                for event_id, row in enumerate(rows, start=last_id + 1)
            ]
            publish(events)
        cur.execute(
            f"INSERT INTO outbox_batches (first_id, last_id, {order.cursor_columns},"
            f" published_at) VALUES (?, ?, {order.cursor_values}, ?)",
            (last_id + 1, last_id + len(rows), *rows[-1][:width], now),
        )
        return len(rows), last_id + len(rows)

    async def events_after(self, after: int, limit: int) -> list[Event]:
        """Published events with id > after, in id order: a consumer's replay."""
        order = self._order

        def find(cur: SqlCursor) -> list[Event]:
            if self._dialect.name == "postgres":
                # One snapshot for the batches and the rows: a prune committing in
                # between must not shift what the ids are counted from.
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            holding = cur.one(
                "SELECT first_id FROM outbox_batches WHERE last_id > ? ORDER BY last_id LIMIT 1",
                (after,),
            )
            if holding is None:
                return []
            first_id = int(holding[0])
            newest = cur.one(
                f"SELECT {order.cursor_columns} FROM outbox_batches ORDER BY last_id DESC LIMIT 1"
            )
            # The batch's rows follow the previous batch's cursor; with no previous batch
            # (the first, or the ones before were pruned with their rows) they are the
            # oldest rows there are.
            start = cur.one(
                f"SELECT {order.cursor_columns} FROM outbox_batches WHERE last_id = ?",
                (first_id - 1,),
            )
            conditions, params = [order.through], order.cursor_params(newest)
            if start is not None:
                conditions.insert(0, order.after)
                params[:0] = order.cursor_params(start)
            skip = max(0, after + 1 - first_id)
            rows = cur.all(
                f"SELECT {_EVENT_COLUMNS} FROM outbox WHERE {' AND '.join(conditions)}"
                f" ORDER BY {order.key} LIMIT ? OFFSET ?",
                [*params, limit, skip],
            )
            return [
                self._event((event_id, *row))
                for event_id, row in enumerate(rows, start=first_id + skip)
            ]

        return await self._run(find)

    async def last_event_id(self) -> int:
        """The id of the newest published event; 0 before the first."""

        def find(cur: SqlCursor) -> int:
            return int(cur.one("SELECT COALESCE(max(last_id), 0) FROM outbox_batches")[0])

        return await self._run(find)

    async def prune_events(self, published_before: datetime, limit: int = 10_000) -> int:
        """Delete the oldest batches published before `published_before`, with their
        events, up to about `limit` events (at least one batch); how many events went.
        The newest batch always stays: the next id counts on from it."""
        order = self._order
        to_datetime = self._dialect.to_datetime

        def prune(cur: SqlCursor) -> int:
            batches = cur.all(
                f"SELECT first_id, last_id, published_at, {order.cursor_columns}"
                " FROM outbox_batches WHERE last_id < (SELECT max(last_id) FROM outbox_batches)"
                " ORDER BY last_id LIMIT ?",
                (limit,),
            )
            # Batches were published in id order: stop at the first too young to go.
            through, events = None, 0
            for batch in batches:
                size = int(batch[1]) - int(batch[0]) + 1
                if to_datetime(batch[2]) >= published_before or (
                    through is not None and events + size > limit
                ):
                    break
                through, events = batch, events + size
            if through is None:
                return 0
            # Every row up to the last batch's cursor is one of these batches' events.
            cur.execute(
                f"DELETE FROM outbox WHERE {order.through}", order.cursor_params(through[3:])
            )
            pruned = int(cur.raw.rowcount)
            cur.execute("DELETE FROM outbox_batches WHERE last_id <= ?", (through[1],))
            return pruned

        return await self._run(prune)

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        """(rows not yet published, when the oldest of them was written)."""
        order = self._order

        def find(cur: SqlCursor) -> tuple[int, datetime | None]:
            # The rows after the newest batch's cursor: a range of the rows' order index.
            cursor = cur.one(
                f"SELECT {order.cursor_columns} FROM outbox_batches ORDER BY last_id DESC LIMIT 1"
            )
            where, params = "", []
            if cursor is not None:
                where, params = f" WHERE {order.after}", order.cursor_params(cursor)
            count, oldest = cur.one(f"SELECT count(*), min(created_at) FROM outbox{where}", params)
            return int(count), None if oldest is None else self._dialect.to_datetime(oldest)

        return await self._run(find)

    def _event(self, row: Any) -> Event:
        """A row of id, _EVENT_COLUMNS."""
        return Event(
            id=int(row[0]),
            type=row[1],
            version=int(row[2]),
            room_id=None if row[3] is None else RoomId(row[3]),
            actor_id=None if row[4] is None else UserId(row[4]),
            occurred_at=self._dialect.to_datetime(row[7]),
            data=row[5],
            traceparent=row[6],
        )
