"""Administration in the store: who is an administrator, closing and purging rooms,
cutting off a user's sessions, and the audit log.

Every change here writes its audit row in its own transaction (an action is on
record if and only if it happened), and a change to a room records its event in
the outbox the same way (chatd/store/outbox.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from chatd.errors import NotFound
from chatd.model import AuditEntry, Room, RoomId, User, UserId, iso
from chatd.store.outbox import record_event
from chatd.store.sqlbase import ROOM_COLUMNS, SqlBase, SqlCursor

_AUDIT_COLUMNS = "id, at, actor_id, action, target_type, target_id, detail, instance"


class AdminSql(SqlBase):
    # -- administrators -----------------------------------------------------------

    async def is_admin(self, user_id: UserId) -> bool:
        def find(cur: SqlCursor) -> bool:
            row = cur.one("SELECT is_admin FROM users WHERE id = ?", (user_id,))
            return row is not None and bool(row[0])

        return await self._run(find)

    async def set_admin(self, user_id: UserId, admin: bool, audit: AuditEntry) -> bool:
        """Grant or revoke; whether that changed anything. NotFound if no such user."""

        def change(cur: SqlCursor) -> bool:
            row = cur.one("SELECT is_admin FROM users WHERE id = ?", (user_id,))
            if row is None:
                raise NotFound(f"user {user_id} does not exist")
            changed = bool(row[0]) != admin
            if changed:
                cur.execute("UPDATE users SET is_admin = ? WHERE id = ?", (admin, user_id))
            _audit(cur, audit, changed=changed)
            return changed

        return await self._run(change)

    async def make_admin(
        self, email: str, password_hash: str | None, audit: AuditEntry
    ) -> tuple[User, bool]:
        """The user with this email made an administrator, created first (with this
        password hash) if there is none: (the user, whether it was created). NotFound
        if there is none and no password hash was given."""
        from chatd.store.sql import email_key  # the one rule for "the same address"

        def make(cur: SqlCursor) -> tuple[User, bool]:
            key = email_key(email)
            row = cur.one("SELECT id, email FROM users WHERE email_key = ?", (key,))
            created = row is None
            if row is None:
                if password_hash is None:
                    raise NotFound(f"no user has the email {email}")
                row = cur.one(
                    "INSERT INTO users (email, email_key, password_hash, is_admin)"
                    " VALUES (?, ?, ?, ?) RETURNING id, email",
                    (email, key, password_hash, True),
                )
            else:
                cur.execute("UPDATE users SET is_admin = ? WHERE id = ?", (True, row[0]))
            user = User(id=UserId(row[0]), email=row[1])
            _audit(cur, audit, target_id=user.id, created=created)
            return user, created

        return await self._run(make)

    # -- sessions -----------------------------------------------------------------

    async def admin_disconnect(
        self, user_id: UserId, revoke_sessions: bool, now: datetime, audit: AuditEntry
    ) -> None:
        """Record a disconnect; with revoke_sessions, also revoke every refresh token of
        the user and refuse their access tokens issued before `now` (the same cut-off a
        password change makes: see token_cutoffs). NotFound if no such user."""

        def disconnect(cur: SqlCursor) -> None:
            if cur.one("SELECT id FROM users WHERE id = ?", (user_id,)) is None:
                raise NotFound(f"user {user_id} does not exist")
            if revoke_sessions:
                cur.execute("UPDATE users SET tokens_valid_after = ? WHERE id = ?", (now, user_id))
                cur.execute(
                    "UPDATE refresh_tokens SET revoked = ? WHERE user_id = ? AND revoked = ?",
                    (True, user_id, False),
                )
            _audit(cur, audit)

        await self._run(disconnect)

    # -- rooms ----------------------------------------------------------------------

    async def close_room(self, room_id: RoomId, now: datetime, audit: AuditEntry) -> Room:
        """Close the room (no new connections or messages): the room as it now is, and
        the room.closed event if it was open. NotFound if no such room."""
        return await self._run(self._set_closed, room_id, now, now, audit)

    async def reopen_room(self, room_id: RoomId, now: datetime, audit: AuditEntry) -> Room:
        return await self._run(self._set_closed, room_id, None, now, audit)

    def _set_closed(
        self,
        cur: SqlCursor,
        room_id: RoomId,
        closed_at: datetime | None,
        now: datetime,
        audit: AuditEntry,
    ) -> Room:
        row = cur.one(
            f"SELECT {ROOM_COLUMNS} FROM rooms WHERE id = ?" + self._dialect.for_update,
            (room_id,),
        )
        if row is None:
            raise NotFound(f"room {room_id} does not exist")
        changed = (row[7] is None) != (closed_at is None)
        if changed:
            row = cur.one(
                f"UPDATE rooms SET closed_at = ? WHERE id = ? RETURNING {ROOM_COLUMNS}",
                (closed_at, room_id),
            )
            data: dict[str, Any] = {"room_id": room_id}
            if closed_at is not None:
                data["closed_at"] = iso(closed_at)
            record_event(
                cur,
                "room.closed" if closed_at is not None else "room.reopened",
                room_id=room_id,
                actor_id=audit.actor_id,
                data=data,
                now=now,
            )
        _audit(cur, audit, changed=changed)
        return self._room(row)

    async def purge_room(
        self, room_id: RoomId, now: datetime, audit: AuditEntry
    ) -> tuple[int, int]:
        """Delete every message and event of the room's sequence (their reactions,
        mentions and search index entries go with them); the room, its members and its
        numbering stay, so new messages take the next ids. (messages deleted, the last
        id purged). NotFound if no such room."""

        def purge(cur: SqlCursor) -> tuple[int, int]:
            # The row lock orders the purge after the writers' batches of this room.
            row = cur.one(
                "SELECT last_seq FROM rooms WHERE id = ?" + self._dialect.for_update, (room_id,)
            )
            if row is None:
                raise NotFound(f"room {room_id} does not exist")
            last_seq = int(row[0])
            count = cur.one(
                "SELECT count(*) FROM messages WHERE room_id = ? AND kind = 'message'", (room_id,)
            )[0]
            cur.execute("DELETE FROM messages WHERE room_id = ?", (room_id,))
            # Nothing is left to be unread: the counters that unread is the difference of.
            cur.execute("UPDATE rooms SET message_count = 0 WHERE id = ?", (room_id,))
            cur.execute("UPDATE room_members SET read_count = 0 WHERE room_id = ?", (room_id,))
            record_event(
                cur,
                "room.purged",
                room_id=room_id,
                actor_id=audit.actor_id,
                data={"room_id": room_id, "up_to": last_seq},
                now=now,
            )
            _audit(cur, audit, messages=int(count), up_to=last_seq)
            return int(count), last_seq

        return await self._run(purge)

    # -- the audit log --------------------------------------------------------------

    async def audit_log(self, before: int | None, limit: int) -> list[AuditEntry]:
        """The newest `limit` entries with id < before (all if None), newest first."""

        def find(cur: SqlCursor) -> list[AuditEntry]:
            rows = cur.all(
                f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?",
                (before if before is not None else 2**62, limit),
            )
            return [
                AuditEntry(
                    id=int(row[0]),
                    at=self._dialect.to_datetime(row[1]),
                    actor_id=None if row[2] is None else UserId(row[2]),
                    action=row[3],
                    target_type=row[4],
                    target_id=row[5],
                    detail=json.loads(row[6]),
                    instance=row[7],
                )
                for row in rows
            ]

        return await self._run(find)


def _audit(cur: SqlCursor, entry: AuditEntry, target_id: int | None = None, **found: Any) -> None:
    """Write the entry, its detail completed with what the change found."""
    cur.execute(
        "INSERT INTO audit_log (at, actor_id, action, target_type, target_id, detail, instance)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            entry.at or datetime.now(UTC),
            entry.actor_id,
            entry.action,
            entry.target_type,
            entry.target_id if target_id is None else target_id,
            json.dumps({**entry.detail, **found}, ensure_ascii=False, separators=(",", ":")),
            entry.instance,
        ),
    )
