"""The SQL Store: accounts, and the hot path of messages (the batched append
and the sequence reads). Rooms and memberships (store/rooms.py), events about
messages (store/events.py) and search (store/search.py) are its other parts;
store/sqlbase.py holds what they share.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import trio

from chatd.errors import ChatdError, NotFound, RoomClosed, StoreUnavailable
from chatd.model import Appended, Draft, Message, MessageId, RoomId, User, UserId
from chatd.store.admin import AdminSql
from chatd.store.events import EventsSql
from chatd.store.mentions import add_mentions, resolve_mentions
from chatd.store.notifications import NotificationsSql
from chatd.store.outbox import OutboxSql, record_message_events
from chatd.store.rooms import RoomsSql
from chatd.store.search import SearchSql
from chatd.store.sqlbase import M_COLUMNS, MESSAGE_COLUMNS, SqlCursor, format_ids

log = logging.getLogger(__name__)

_INSERT_COLUMNS = (
    "seq",
    "room_id",
    "user_id",
    "text",
    "client_id",
    "created_at",
    "message_no",
    "mentions",
)
_INSERT_TYPES = ("bigint", "bigint", "bigint", "text", "text", "timestamptz", "bigint", "text")


class SqlStore(RoomsSql, EventsSql, SearchSql, NotificationsSql, AdminSql, OutboxSql):
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
        def create(cur: SqlCursor) -> User:
            row = cur.one(
                "INSERT INTO users (email, email_key, password_hash) VALUES (?, ?, ?) RETURNING id",
                (email, email_key(email), password_hash),
            )
            return User(id=UserId(row[0]), email=email)

        return await self._run(create)

    async def user_by_id(self, user_id: UserId) -> User | None:
        def find(cur: SqlCursor) -> User | None:
            row = cur.one("SELECT id, email FROM users WHERE id = ?", (user_id,))
            return None if row is None else User(id=UserId(row[0]), email=row[1])

        return await self._run(find)

    async def credentials(self, email: str) -> tuple[User, str] | None:
        def find(cur: SqlCursor) -> tuple[User, str] | None:
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

        def use(cur: SqlCursor) -> tuple[UserId, str] | None:
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
        def revoke(cur: SqlCursor) -> bool:
            row = cur.one("SELECT family FROM refresh_tokens WHERE token_hash = ?", (token_hash,))
            if row is None:
                return False
            cur.execute("UPDATE refresh_tokens SET revoked = ? WHERE family = ?", (True, row[0]))
            return True

        return await self._run(revoke)

    async def change_password(self, user_id: UserId, password_hash: str, now: datetime) -> None:
        def change(cur: SqlCursor) -> None:
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
        def find(cur: SqlCursor) -> dict[UserId, datetime]:
            rows = cur.all(
                "SELECT id, tokens_valid_after FROM users WHERE tokens_valid_after > ?", (since,)
            )
            return {UserId(row[0]): self._dialect.to_datetime(row[1]) for row in rows}

        return await self._run(find)

    # -- messages ---------------------------------------------------------

    async def append(self, drafts: Sequence[Draft], now: datetime) -> list[Appended | ChatdError]:
        return await self._run(self._append, drafts, now)

    def _append(
        self, cur: SqlCursor, drafts: Sequence[Draft], now: datetime
    ) -> list[Appended | ChatdError]:
        # A handful of statements per batch, whatever its size: lock the rooms,
        # find the resends, insert, advance the counters and the senders' watermarks,
        # and write the fresh messages' events to the outbox.
        by_room: dict[RoomId, list[int]] = {}
        for index, draft in enumerate(drafts):
            by_room.setdefault(draft.room_id, []).append(index)
        closed: set[RoomId] = set()
        counters = self._lock_rooms(cur, sorted(by_room), closed)
        # A statement of its own, after the lock: under READ COMMITTED it sees what
        # another instance's writer committed to these rooms while we waited.
        stored = self._by_client_ids(
            cur,
            list(
                dict.fromkeys(
                    (d.room_id, d.user_id, d.client_id)
                    for d in drafts
                    if d.client_id is not None and d.room_id in counters
                )
            ),
        )
        outcomes: list[Appended | ChatdError | None] = [None] * len(drafts)
        rows: list[tuple[Any, ...]] = []
        fresh: list[Message] = []
        traceparents: list[str | None] = []
        advanced: list[tuple[RoomId, int, int]] = []
        read_up_to: dict[tuple[RoomId, UserId], tuple[int, int]] = {}
        mentioned: list[tuple[UserId, RoomId, int]] = []
        for room_id, indexes in by_room.items():
            if room_id not in counters:
                gone: ChatdError = (
                    RoomClosed(f"room {room_id} is closed")
                    if room_id in closed
                    else NotFound(f"room {room_id} no longer exists")
                )
                for index in indexes:
                    outcomes[index] = gone
                continue
            seq, count = counters[room_id]
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
                count += 1
                # Only a text with an @ costs a lookup.
                mentions = (
                    resolve_mentions(cur, room_id, draft.user_id, draft.text)
                    if "@" in draft.text
                    else ()
                )
                message = Message(
                    id=MessageId(seq),
                    room_id=room_id,
                    user_id=draft.user_id,
                    text=draft.text,
                    created_at=now,
                    client_id=client_id,
                    mentions=mentions,
                )
                outcomes[index] = Appended(message, fresh=True)
                fresh.append(message)
                traceparents.append(draft.traceparent)
                rows.append(
                    (
                        seq,
                        room_id,
                        draft.user_id,
                        draft.text,
                        client_id,
                        now,
                        count,
                        format_ids(mentions),
                    )
                )
                mentioned.extend((user, room_id, seq) for user in mentions)
                read_up_to[(room_id, draft.user_id)] = (seq, count)
                if client_id is not None:
                    stored[key] = message  # a duplicate later in the batch is a resend
            if seq != counters[room_id][0]:
                advanced.append((room_id, seq, count))
        if rows:
            dialect = self._dialect
            dialect.insert_rows(cur.raw, "messages", _INSERT_COLUMNS, _INSERT_TYPES, rows)
            for source, params in dialect.row_queries(("bigint",) * 3, advanced):
                cur.execute(
                    f"WITH k (id, last_seq, message_count) AS ({source})"
                    " UPDATE rooms SET last_seq = k.last_seq, message_count = k.message_count"
                    " FROM k WHERE rooms.id = k.id",
                    params,
                )
            # Sending marks the room read up to one's own message.
            reads = [(r, u, seq, n) for (r, u), (seq, n) in read_up_to.items()]
            for source, params in dialect.row_queries(("bigint",) * 4, reads):
                cur.execute(
                    f"WITH k (room_id, user_id, seq, read_count) AS ({source})"
                    " UPDATE room_members SET last_read_id = k.seq, read_count = k.read_count"
                    " FROM k WHERE room_members.room_id = k.room_id"
                    " AND room_members.user_id = k.user_id AND room_members.last_read_id < k.seq",
                    params,
                )
            if mentioned:
                add_mentions(cur, mentioned)
            record_message_events(cur, dialect, fresh, traceparents, now)
        return [outcome for outcome in outcomes if outcome is not None]

    def _lock_rooms(
        self, cur: SqlCursor, room_ids: list[RoomId], closed: set[RoomId]
    ) -> dict[RoomId, tuple[int, int]]:
        """Each existing open room's (last_seq, message_count), its row locked until the
        transaction ends; closed rooms go into `closed`. Rooms are locked in id order so
        two instances' writers cannot deadlock.
        """
        counters: dict[RoomId, tuple[int, int]] = {}
        lock = self._dialect.for_update
        for source, params in self._dialect.row_queries(("bigint",), [(r,) for r in room_ids]):
            rows = cur.all(
                f"SELECT id, last_seq, message_count, closed_at FROM rooms WHERE id IN ({source})"
                " ORDER BY id" + lock,
                params,
            )
            for row in rows:
                if row[3] is None:
                    counters[RoomId(row[0])] = (int(row[1]), int(row[2]))
                else:  # closed by an administrator: takes nothing new (the caller says so)
                    closed.add(RoomId(row[0]))
        return counters

    def _by_client_ids(
        self, cur: SqlCursor, keys: list[tuple[RoomId, UserId, str]]
    ) -> dict[tuple[RoomId, UserId, str], Message]:
        """The stored messages with these (room, user, client_id) keys."""
        found: dict[tuple[RoomId, UserId, str], Message] = {}
        for source, params in self._dialect.row_queries(("bigint", "bigint", "text"), keys):
            rows = cur.all(
                f"WITH k (room_id, user_id, client_id) AS ({source})"
                f" SELECT {M_COLUMNS} FROM k JOIN messages m ON m.room_id = k.room_id"
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
        def find(cur: SqlCursor) -> list[Message]:
            rows = cur.all(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq < ?"
                " AND kind = 'message' ORDER BY seq DESC LIMIT ?",
                (room_id, before if before is not None else 2**62, limit),
            )
            return [self._message(row) for row in reversed(rows)]

        return await self._run(find)

    async def messages_after(self, room_id: RoomId, after: int, limit: int) -> list[Message]:
        def find(cur: SqlCursor) -> list[Message]:
            rows = cur.all(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (room_id, after, limit),
            )
            return [self._message(row) for row in rows]

        return await self._run(find)

    async def last_message_id(self, room_id: RoomId) -> int:
        def find(cur: SqlCursor) -> int:
            row = cur.one("SELECT last_seq FROM rooms WHERE id = ?", (room_id,))
            if row is None:
                raise NotFound(f"room {room_id} does not exist")
            return int(row[0])

        return await self._run(find)


def email_key(email: str) -> str:
    """What makes two addresses the same account: case does not."""
    return email.strip().casefold()
