"""Message search: PostgreSQL's full-text index or SQLite's FTS5 table (schema 0005).

Both find the messages (not events, not tombstones) holding every term as a word or the
start of one, in the rooms the user may read: public rooms, and any room they belong to.
The terms come from chatd/search/query.py (letters and digits only); each is quoted and
read by the database's own tokenizer, so no query syntax ever comes from the user.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chatd.errors import ValidationFailed
from chatd.model import Message, RoomId, UserId
from chatd.store.sqlbase import M_COLUMNS, MESSAGE_COLUMNS, SqlBase, SqlCursor

# The rooms the user may read, as one set the database builds once per search.
_READABLE = (
    " AND {room_id} IN (SELECT id FROM rooms WHERE kind = 'room' AND visibility = 'public'"
    " UNION ALL SELECT room_id FROM room_members WHERE user_id = ?)"
)
# PostgreSQL: the expression and condition of the partial index, word for word. GIN
# yields matches in no useful order, so every match is sorted to find the newest.
_PG_SEARCH = (
    f"SELECT {MESSAGE_COLUMNS} FROM messages"
    " WHERE kind = 'message' AND NOT deleted"
    " AND message_search_vector(text) @@ to_tsquery('simple', ?)"
    + _READABLE.format(room_id="room_id")
)
_PG_BEFORE = " AND (created_at, room_id, seq) < (?, ?, ?)"
_PG_NEWEST_FIRST = " ORDER BY created_at DESC, room_id DESC, seq DESC LIMIT ?"
# SQLite: FTS5 walks its matches newest first by rowid, the order messages were inserted
# in, and stops at the page's end instead of sorting them all: the one SQLite connection
# is the writer's too. Rowid order is (created_at, room_id, id) order except where the
# clock stepped back or one batch held several rooms (then the order they were written).
_SQLITE_SEARCH = (
    f"SELECT {M_COLUMNS} FROM message_search s JOIN messages m ON m.rowid = s.rowid"
    " WHERE s.message_search MATCH ? AND m.kind = 'message' AND NOT m.deleted"
    + _READABLE.format(room_id="m.room_id")
)
# A message removed with its room since the page before ends the search (rowid < 0).
_SQLITE_BEFORE = (
    " AND s.rowid < coalesce((SELECT rowid FROM messages WHERE room_id = ? AND seq = ?), 0)"
)
_SQLITE_NEWEST_FIRST = " ORDER BY s.rowid DESC LIMIT ?"


class SearchSql(SqlBase):
    async def search_messages(
        self,
        user_id: UserId,
        terms: list[str],
        room_id: RoomId | None,
        before: tuple[str, int, int] | None,
        limit: int,
    ) -> list[Message]:
        """Messages with every term, newest first, from after `before` on.

        `before` is the last result's key: its created_at (ISO 8601), room id and id.
        """
        postgres = self._dialect.name == "postgres"
        params: list[Any] = [pg_tsquery(terms) if postgres else fts5_query(terms), user_id]
        if room_id is not None:
            params.append(room_id)
        if before is not None:
            key = _key(before)  # checked on both, though SQLite needs no time
            params.extend(key if postgres else key[1:])
        params.append(limit)
        query = search_sql(
            self._dialect.name, in_room=room_id is not None, paged=before is not None
        )

        def find(cur: SqlCursor) -> list[Message]:
            return [self._message(row) for row in cur.all(query, params)]

        return await self._run(find)


def search_sql(dialect: str, *, in_room: bool, paged: bool) -> str:
    """The query, in `?` SQL. Its parameters: the match, the user, the room if `in_room`,
    if `paged` the key (PostgreSQL: created_at, room id, id; SQLite: room id, id), and
    the limit."""
    if dialect == "postgres":
        sql, room, before, order = _PG_SEARCH, "room_id", _PG_BEFORE, _PG_NEWEST_FIRST
    else:
        sql, room, before, order = _SQLITE_SEARCH, "m.room_id", _SQLITE_BEFORE, _SQLITE_NEWEST_FIRST
    if in_room:
        sql += f" AND {room} = ?"
    if paged:
        sql += before
    return sql + order


def pg_tsquery(terms: list[str]) -> str:
    """The tsquery 't1':* & 't2':*: each term a quoted lexeme, matched as a prefix."""
    return " & ".join("'" + term.replace("\\", "\\\\").replace("'", "''") + "':*" for term in terms)


def fts5_query(terms: list[str]) -> str:
    """The FTS5 query "t1"* AND "t2"*: each term a quoted string, matched as a prefix."""
    return " AND ".join('"' + term.replace('"', '""') + '"*' for term in terms)


def _key(before: tuple[str, int, int]) -> tuple[Any, ...]:
    created_at, room_id, message_id = before
    try:
        when = datetime.fromisoformat(created_at)
        if when.tzinfo is None:
            raise ValueError("no time zone")
        # A datetime in UTC, not the string: each driver writes it the way it stored
        # created_at (SQLite: its adapter's ISO text), so the comparison is exact.
        when = when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValidationFailed("the cursor's time is not an ISO 8601 time with a zone") from None
    return when, room_id, message_id
