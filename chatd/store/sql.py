"""One SQL implementation of the Store protocol, shared by both backends.

The SQL is written once with `?` placeholders; a Dialect supplies the
driver, its placeholder, row locking, many rows as one query's parameters
(unnest of arrays, or VALUES lists), bulk insert, and which driver errors
mean what. Every call runs in a worker thread, inside one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import trio

from chatd.errors import ChatdError, Conflict, NotFound, StoreUnavailable
from chatd.model import (
    Appended,
    Draft,
    Message,
    MessageId,
    Room,
    RoomId,
    User,
    UserId,
    Visibility,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

ROOM_COLUMNS = "id, name, visibility, owner_id, created_at"
MESSAGE_COLUMNS = "seq, room_id, user_id, text, created_at, client_id"
_M_COLUMNS = ", ".join("m." + column for column in MESSAGE_COLUMNS.split(", "))
_INSERT_COLUMNS = ("seq", "room_id", "user_id", "text", "client_id", "created_at")
_INSERT_TYPES = ("bigint", "bigint", "bigint", "text", "text", "timestamptz")


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


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


class SqlStore:
    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._sql_cache: dict[str, str] = {}

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
                return fn(_SqlCursor(cur, self._sql), *args)
        except dialect.integrity_errors as exc:
            raise Conflict(_conflict_message(exc)) from exc
        except dialect.unavailable_errors as exc:
            log.warning("%s store unavailable: %s", dialect.name, exc)
            raise StoreUnavailable("the database is not answering; try again") from exc

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(
            self._in_transaction, fn, args, limiter=self._dialect.limiter
        )

    def _room(self, row: Any) -> Room:
        return Room(
            id=RoomId(row[0]),
            name=row[1],
            visibility=row[2],
            owner_id=UserId(row[3]),
            created_at=self._dialect.to_datetime(row[4]),
        )

    def _message(self, row: Any) -> Message:
        return Message(
            id=MessageId(row[0]),
            room_id=RoomId(row[1]),
            user_id=UserId(row[2]),
            text=row[3],
            created_at=self._dialect.to_datetime(row[4]),
            client_id=row[5],
        )

    async def ping(self, timeout_s: float) -> None:
        def probe() -> None:
            try:
                with self._dialect.transaction(timeout_s) as cur:
                    cur.execute("SELECT 1")
            except self._dialect.unavailable_errors as exc:
                raise StoreUnavailable(f"the database is not answering: {exc}") from exc

        await trio.to_thread.run_sync(probe, limiter=self._dialect.limiter)

    async def aclose(self) -> None:
        await trio.to_thread.run_sync(self._dialect.close)

    # -- users and tokens -------------------------------------------------

    async def create_user(self, email: str, password_hash: str) -> User:
        def create(cur: _SqlCursor) -> User:
            row = cur.one(
                "INSERT INTO users (email, email_key, password_hash) VALUES (?, ?, ?) RETURNING id",
                (email, email_key(email), password_hash),
            )
            return User(id=UserId(row[0]), email=email)

        return await self._run(create)

    async def user_by_id(self, user_id: UserId) -> User | None:
        def find(cur: _SqlCursor) -> User | None:
            row = cur.one("SELECT id, email FROM users WHERE id = ?", (user_id,))
            return None if row is None else User(id=UserId(row[0]), email=row[1])

        return await self._run(find)

    async def credentials(self, email: str) -> tuple[User, str] | None:
        def find(cur: _SqlCursor) -> tuple[User, str] | None:
            row = cur.one(
                "SELECT id, email, password_hash FROM users WHERE email_key = ?",
                (email_key(email),),
            )
            return None if row is None else (User(id=UserId(row[0]), email=row[1]), row[2])

        return await self._run(find)

    async def add_refresh_token(
        self, user_id: UserId, token_hash: str, family: str, expires_at: datetime
    ) -> None:
        await self._run(
            lambda cur: cur.execute(
                "INSERT INTO refresh_tokens (token_hash, user_id, family, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (token_hash, user_id, family, expires_at),
            )
        )

    async def use_refresh_token(
        self, token_hash: str, now: datetime, replay_grace_s: float
    ) -> tuple[UserId, str] | None:
        lock = self._dialect.for_update

        def use(cur: _SqlCursor) -> tuple[UserId, str] | None:
            row = cur.one(
                "SELECT user_id, family, used_at, revoked, expires_at"
                " FROM refresh_tokens WHERE token_hash = ?" + lock,
                (token_hash,),
            )
            if row is None:
                return None
            user_id, family, used_at, revoked, expires_at = row
            if revoked or self._dialect.to_datetime(expires_at) <= now:
                return None
            if used_at is not None:
                # A quick second try is a client that lost the answer (a reload mid-refresh,
                # a duplicated tab): refuse it, but only a later replay looks like theft.
                if now - self._dialect.to_datetime(used_at) > timedelta(seconds=replay_grace_s):
                    log.warning("refresh token replayed: revoking its family for user %s", user_id)
                    cur.execute(
                        "UPDATE refresh_tokens SET revoked = ? WHERE family = ?", (True, family)
                    )
                return None
            cur.execute(
                "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?", (now, token_hash)
            )
            return UserId(user_id), family

        return await self._run(use)

    async def revoke_refresh_family(self, token_hash: str) -> bool:
        def revoke(cur: _SqlCursor) -> bool:
            row = cur.one("SELECT family FROM refresh_tokens WHERE token_hash = ?", (token_hash,))
            if row is None:
                return False
            cur.execute("UPDATE refresh_tokens SET revoked = ? WHERE family = ?", (True, row[0]))
            return True

        return await self._run(revoke)

    async def change_password(self, user_id: UserId, password_hash: str, now: datetime) -> None:
        def change(cur: _SqlCursor) -> None:
            row = cur.one(
                "UPDATE users SET password_hash = ?, tokens_valid_after = ? WHERE id = ?"
                " RETURNING id",
                (password_hash, now, user_id),
            )
            if row is None:
                raise NotFound(f"user {user_id} does not exist")
            # Every session, not one family: whoever knew the old password is out.
            cur.execute(
                "UPDATE refresh_tokens SET revoked = ? WHERE user_id = ? AND revoked = ?",
                (True, user_id, False),
            )

        await self._run(change)

    async def token_cutoffs(self, since: datetime) -> dict[UserId, datetime]:
        def find(cur: _SqlCursor) -> dict[UserId, datetime]:
            rows = cur.all(
                "SELECT id, tokens_valid_after FROM users WHERE tokens_valid_after > ?", (since,)
            )
            return {UserId(row[0]): self._dialect.to_datetime(row[1]) for row in rows}

        return await self._run(find)

    # -- rooms ------------------------------------------------------------

    async def create_room(
        self, owner_id: UserId, name: str, visibility: Visibility, now: datetime
    ) -> Room:
        def create(cur: _SqlCursor) -> Room:
            row = cur.one(
                "INSERT INTO rooms (name, visibility, owner_id, created_at) VALUES (?, ?, ?, ?)"
                " RETURNING " + ROOM_COLUMNS,
                (name, visibility, owner_id, now),
            )
            cur.execute(
                "INSERT INTO room_members (room_id, user_id, joined_at) VALUES (?, ?, ?)",
                (row[0], owner_id, now),
            )
            return self._room(row)

        return await self._run(create)

    async def room(self, room_id: RoomId) -> Room | None:
        def find(cur: _SqlCursor) -> Room | None:
            row = cur.one(f"SELECT {ROOM_COLUMNS} FROM rooms WHERE id = ?", (room_id,))
            return None if row is None else self._room(row)

        return await self._run(find)

    async def rooms_visible_to(
        self, user_id: UserId, after: RoomId | None, limit: int
    ) -> list[Room]:
        def find(cur: _SqlCursor) -> list[Room]:
            rows = cur.all(
                f"SELECT {ROOM_COLUMNS} FROM rooms r"
                " WHERE r.id > ? AND (r.visibility = 'public' OR EXISTS ("
                "   SELECT 1 FROM room_members m WHERE m.room_id = r.id AND m.user_id = ?))"
                " ORDER BY r.id LIMIT ?",
                (after or 0, user_id, limit),
            )
            return [self._room(row) for row in rows]

        return await self._run(find)

    async def update_room(
        self, room_id: RoomId, name: str | None, visibility: Visibility | None
    ) -> Room:
        def update(cur: _SqlCursor) -> Room:
            row = cur.one(
                "UPDATE rooms SET name = COALESCE(?, name), visibility = COALESCE(?, visibility)"
                " WHERE id = ? RETURNING " + ROOM_COLUMNS,
                (name, visibility, room_id),
            )
            if row is None:
                raise NotFound(f"room {room_id} does not exist")
            return self._room(row)

        return await self._run(update)

    async def delete_room(self, room_id: RoomId) -> None:
        def delete(cur: _SqlCursor) -> None:
            # Children first: SQLite only cascades with a per-connection pragma.
            cur.execute("DELETE FROM messages WHERE room_id = ?", (room_id,))
            cur.execute("DELETE FROM room_members WHERE room_id = ?", (room_id,))
            if cur.one("DELETE FROM rooms WHERE id = ? RETURNING id", (room_id,)) is None:
                raise NotFound(f"room {room_id} does not exist")

        await self._run(delete)

    async def is_member(self, room_id: RoomId, user_id: UserId) -> bool:
        def find(cur: _SqlCursor) -> bool:
            row = cur.one(
                "SELECT 1 FROM room_members WHERE room_id = ? AND user_id = ?", (room_id, user_id)
            )
            return row is not None

        return await self._run(find)

    async def add_member(self, room_id: RoomId, user_id: UserId, now: datetime) -> None:
        await self._run(
            lambda cur: cur.execute(
                "INSERT INTO room_members (room_id, user_id, joined_at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (room_id, user_id, now),
            )
        )

    async def remove_member(self, room_id: RoomId, user_id: UserId) -> None:
        await self._run(
            lambda cur: cur.execute(
                "DELETE FROM room_members WHERE room_id = ? AND user_id = ?", (room_id, user_id)
            )
        )

    async def members(self, room_id: RoomId) -> list[UserId]:
        def find(cur: _SqlCursor) -> list[UserId]:
            rows = cur.all(
                "SELECT user_id FROM room_members WHERE room_id = ? ORDER BY user_id", (room_id,)
            )
            return [UserId(row[0]) for row in rows]

        return await self._run(find)

    # -- messages ---------------------------------------------------------

    async def append(self, drafts: Sequence[Draft], now: datetime) -> list[Appended | ChatdError]:
        return await self._run(self._append, drafts, now)

    def _append(
        self, cur: _SqlCursor, drafts: Sequence[Draft], now: datetime
    ) -> list[Appended | ChatdError]:
        # A handful of statements per batch, whatever its size: lock the rooms,
        # find the resends, insert, advance the counters.
        by_room: dict[RoomId, list[int]] = {}
        for index, draft in enumerate(drafts):
            by_room.setdefault(draft.room_id, []).append(index)
        last_seqs = self._lock_rooms(cur, sorted(by_room))
        # A statement of its own, after the lock: under READ COMMITTED it sees what
        # another instance's writer committed to these rooms while we waited.
        stored = self._by_client_ids(
            cur,
            list(
                dict.fromkeys(
                    (d.room_id, d.user_id, d.client_id)
                    for d in drafts
                    if d.client_id is not None and d.room_id in last_seqs
                )
            ),
        )
        outcomes: list[Appended | ChatdError | None] = [None] * len(drafts)
        rows: list[tuple[Any, ...]] = []
        advanced: list[tuple[RoomId, int]] = []
        for room_id, indexes in by_room.items():
            if room_id not in last_seqs:
                gone = NotFound(f"room {room_id} no longer exists")
                for index in indexes:
                    outcomes[index] = gone
                continue
            seq = last_seqs[room_id]
            for index in indexes:
                draft = drafts[index]
                client_id = draft.client_id
                if client_id is not None:
                    key = (room_id, draft.user_id, client_id)
                    original = stored.get(key)
                    if original is not None:
                        outcomes[index] = Appended(original, fresh=False)
                        continue
                seq += 1
                message = Message(
                    id=MessageId(seq),
                    room_id=room_id,
                    user_id=draft.user_id,
                    text=draft.text,
                    created_at=now,
                    client_id=client_id,
                )
                outcomes[index] = Appended(message, fresh=True)
                rows.append((seq, room_id, draft.user_id, draft.text, client_id, now))
                if client_id is not None:
                    stored[key] = message  # a duplicate later in the batch is a resend
            if seq != last_seqs[room_id]:
                advanced.append((room_id, seq))
        if rows:
            self._dialect.insert_rows(cur.raw, "messages", _INSERT_COLUMNS, _INSERT_TYPES, rows)
            for source, params in self._dialect.row_queries(("bigint", "bigint"), advanced):
                cur.execute(
                    f"WITH k (id, last_seq) AS ({source})"
                    " UPDATE rooms SET last_seq = k.last_seq FROM k WHERE rooms.id = k.id",
                    params,
                )
        return [outcome for outcome in outcomes if outcome is not None]

    def _lock_rooms(self, cur: _SqlCursor, room_ids: list[RoomId]) -> dict[RoomId, int]:
        """Each existing room's last_seq, its row locked until the transaction ends.

        Rooms are locked in id order so two instances' writers cannot deadlock.
        """
        last_seqs: dict[RoomId, int] = {}
        lock = self._dialect.for_update
        for source, params in self._dialect.row_queries(("bigint",), [(r,) for r in room_ids]):
            rows = cur.all(
                f"SELECT id, last_seq FROM rooms WHERE id IN ({source}) ORDER BY id" + lock, params
            )
            last_seqs.update((RoomId(row[0]), int(row[1])) for row in rows)
        return last_seqs

    def _by_client_ids(
        self, cur: _SqlCursor, keys: list[tuple[RoomId, UserId, str]]
    ) -> dict[tuple[RoomId, UserId, str], Message]:
        """The stored messages with these (room, user, client_id) keys."""
        found: dict[tuple[RoomId, UserId, str], Message] = {}
        for source, params in self._dialect.row_queries(("bigint", "bigint", "text"), keys):
            rows = cur.all(
                f"WITH k (room_id, user_id, client_id) AS ({source})"
                f" SELECT {_M_COLUMNS} FROM k JOIN messages m ON m.room_id = k.room_id"
                " AND m.user_id = k.user_id AND m.client_id = k.client_id",
                params,
            )
            for row in rows:
                message = self._message(row)
                found[(message.room_id, message.user_id, row[5])] = message
        return found

    async def messages_before(
        self, room_id: RoomId, before: int | None, limit: int
    ) -> list[Message]:
        def find(cur: _SqlCursor) -> list[Message]:
            rows = cur.all(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq < ?"
                " ORDER BY seq DESC LIMIT ?",
                (room_id, before if before is not None else 2**62, limit),
            )
            return [self._message(row) for row in reversed(rows)]

        return await self._run(find)

    async def messages_after(self, room_id: RoomId, after: int, limit: int) -> list[Message]:
        def find(cur: _SqlCursor) -> list[Message]:
            rows = cur.all(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (room_id, after, limit),
            )
            return [self._message(row) for row in rows]

        return await self._run(find)

    async def last_message_id(self, room_id: RoomId) -> int:
        def find(cur: _SqlCursor) -> int:
            row = cur.one("SELECT last_seq FROM rooms WHERE id = ?", (room_id,))
            if row is None:
                raise NotFound(f"room {room_id} does not exist")
            return int(row[0])

        return await self._run(find)


class _SqlCursor:
    """A driver cursor that speaks the shared `?` SQL."""

    def __init__(self, cur: Cursor, translate: Callable[[str], str]) -> None:
        self._cur = cur
        self._translate = translate

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


def email_key(email: str) -> str:
    """What makes two addresses the same account: case does not."""
    return email.strip().casefold()


def _conflict_message(exc: Exception) -> str:
    text = str(exc).lower()
    if "email" in text:
        return "that email is already registered"
    return "that already exists"
