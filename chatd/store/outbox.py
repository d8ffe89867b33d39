"""Writing events into the outbox, inside the transaction of the change they record.

Every store method that commits a change calls record_event() (or, for the writer's
batches, record_message_events()) with its cursor before it returns: the event commits
with the change or not at all. Numbering, publishing and reading them back is the
relay's side (OutboxSql in this module's later half, chatd/events/relay.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from chatd.events.event import MESSAGE_EVENTS, VERSION, EventType
from chatd.model import Message, RoomId, UserId
from chatd.store.sqlbase import Dialect, SqlCursor

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
    """One event of a change this transaction commits."""
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
