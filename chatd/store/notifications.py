"""Notifications and the positions of the stream's consumers (schema 0008).

The notifications consumer (chatd/notifications/) records what a batch of events
produced and how far it got in one transaction: record_notifications() writes the
rows and the new position together, so after a crash the consumer resumes where the
last commit left it, and an event seen twice records nothing twice (the rows are
unique per user, event and kind).

One replica consumes at a time: it holds a lease on its consumer_positions row
(claim_consumer), renews it with every batch, and every batch checks that it still
holds it before writing; a replica that stalled past its lease finds it taken and
writes nothing (a fence, not just a lock).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chatd.errors import Conflict
from chatd.model import MessageId, Notification, NotificationKind, RoomId, UserId
from chatd.store.sqlbase import SqlBase, SqlCursor

_NEW_COLUMNS = ("user_id", "kind", "room_id", "message_id", "sender_id", "event_id", "excerpt")
_NEW_TYPES = ("bigint", "text", "bigint", "bigint", "bigint", "bigint", "text")
_COLUMNS = (
    "id, user_id, kind, room_id, message_id, sender_id, event_id, excerpt, created_at, read_at"
)


class LeaseLost(Conflict):
    """Another replica holds this consumer's lease now: stand by."""

    code = "lease_lost"


@dataclass(frozen=True, slots=True)
class NotificationDraft:
    """A notification to record, if its user may still read the room."""

    user_id: UserId
    kind: NotificationKind
    room_id: RoomId
    message_id: MessageId
    sender_id: UserId
    event_id: int
    excerpt: str

    @property
    def key(self) -> tuple[int, int, str]:
        return self.user_id, self.event_id, self.kind


class NotificationsSql(SqlBase):
    # -- the consumer's side ------------------------------------------------

    async def claim_consumer(
        self, name: str, holder: str, lease_s: float, now: datetime
    ) -> int | None:
        """Take (or renew) the lease of consumer `name` for `holder`: its stored position,
        or None while another holder's lease runs."""

        def claim(cur: SqlCursor) -> int | None:
            cur.execute(
                "INSERT INTO consumer_positions (name) VALUES (?) ON CONFLICT DO NOTHING", (name,)
            )
            position, current, until = cur.one(
                "SELECT position, holder, lease_until FROM consumer_positions WHERE name = ?"
                + self._dialect.for_update,
                (name,),
            )
            # Compared here, not in SQL: SQLite keeps times as text.
            if current not in (None, holder) and self._dialect.to_datetime(until) > now:
                return None
            cur.execute(
                "UPDATE consumer_positions SET holder = ?, lease_until = ? WHERE name = ?",
                (holder, now + timedelta(seconds=lease_s), name),
            )
            return int(position)

        return await self._run(claim)

    async def release_consumer(self, name: str, holder: str) -> None:
        """Give the lease up (a clean shutdown), so a standby takes over at once."""

        def release(cur: SqlCursor) -> None:
            cur.execute(
                "UPDATE consumer_positions SET holder = NULL, lease_until = NULL"
                " WHERE name = ? AND holder = ?",
                (name, holder),
            )

        await self._run(release)

    async def consumer_position(self, name: str) -> int:
        def find(cur: SqlCursor) -> int:
            row = cur.one("SELECT position FROM consumer_positions WHERE name = ?", (name,))
            return 0 if row is None else int(row[0])

        return await self._run(find)

    async def set_consumer_position(self, name: str, position: int) -> None:
        """Move a consumer to `position` (an operator replaying from an earlier event)."""

        def move(cur: SqlCursor) -> None:
            cur.execute(
                "INSERT INTO consumer_positions (name) VALUES (?) ON CONFLICT DO NOTHING", (name,)
            )
            cur.execute(
                "UPDATE consumer_positions SET position = ? WHERE name = ?", (position, name)
            )

        await self._run(move)

    async def record_notifications(
        self,
        consumer: str,
        holder: str,
        position: int,
        drafts: Sequence[NotificationDraft],
        lease_s: float,
        now: datetime,
    ) -> list[Notification]:
        """In one transaction: the drafts whose user may still read the room (a member,
        or anyone for a public room) and that were not recorded before, and `position`
        as the consumer's. The notifications made, in draft order. LeaseLost (nothing
        written) if `holder` no longer holds the consumer's lease."""

        def record(cur: SqlCursor) -> list[Notification]:
            # First, so that the row stays locked until commit: no other holder slips in.
            held = cur.one(
                "UPDATE consumer_positions SET position = ?, lease_until = ?"
                " WHERE name = ? AND holder = ? RETURNING name",
                (position, now + timedelta(seconds=lease_s), consumer, holder),
            )
            if held is None:
                raise LeaseLost(f"consumer {consumer}: {holder} no longer holds the lease")
            rows = [
                (d.user_id, d.kind, d.room_id, d.message_id, d.sender_id, d.event_id, d.excerpt)
                for d in drafts
            ]
            made: dict[tuple[int, int, str], tuple[int, Any]] = {}
            names = ", ".join(_NEW_COLUMNS)
            for source, params in self._dialect.row_queries(_NEW_TYPES, rows):
                for row in cur.all(
                    f"WITH n ({names}) AS ({source})"
                    f" INSERT INTO notifications ({names}, created_at)"
                    f" SELECT n.*, ? FROM n JOIN rooms r ON r.id = n.room_id"
                    " WHERE (r.kind = 'room' AND r.visibility = 'public') OR EXISTS ("
                    "  SELECT 1 FROM room_members m"
                    "  WHERE m.room_id = n.room_id AND m.user_id = n.user_id)"
                    " ON CONFLICT DO NOTHING RETURNING id, user_id, event_id, kind, created_at",
                    (*params, now),
                ):
                    made[row[1], row[2], row[3]] = (row[0], row[4])
            return [
                Notification(
                    id=made[d.key][0],
                    user_id=d.user_id,
                    kind=d.kind,
                    room_id=d.room_id,
                    message_id=d.message_id,
                    sender_id=d.sender_id,
                    event_id=d.event_id,
                    excerpt=d.excerpt,
                    created_at=self._dialect.to_datetime(made[d.key][1]),
                )
                for d in drafts
                if d.key in made
            ]

        return await self._run(record)

    # -- the user's side ----------------------------------------------------

    async def notifications_for(
        self, user_id: UserId, *, unread_only: bool, before: int | None, limit: int
    ) -> list[Notification]:
        """The user's notifications with id < before (all if None), newest first."""

        def find(cur: SqlCursor) -> list[Notification]:
            where = "user_id = ?"
            params: list[Any] = [user_id]
            if unread_only:
                where += " AND read_at IS NULL"
            if before is not None:
                where += " AND id < ?"
                params.append(before)
            rows = cur.all(
                f"SELECT {_COLUMNS} FROM notifications WHERE {where} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            )
            return [self._notification(row) for row in rows]

        return await self._run(find)

    async def unread_notifications(self, user_id: UserId) -> int:
        def count(cur: SqlCursor) -> int:
            row = cur.one(
                "SELECT count(*) FROM notifications WHERE user_id = ? AND read_at IS NULL",
                (user_id,),
            )
            return int(row[0])

        return await self._run(count)

    async def mark_notifications_read(
        self,
        user_id: UserId,
        *,
        ids: Sequence[int] = (),
        up_to: int | None = None,
        now: datetime,
    ) -> int:
        """Mark the user's own notifications read: these ids, and every one with id <=
        up_to. Others' ids and ones read already are left alone. Returns the unread
        count after."""

        def mark(cur: SqlCursor) -> int:
            if ids:
                for source, params in self._dialect.row_queries(("bigint",), [(i,) for i in ids]):
                    cur.execute(
                        "UPDATE notifications SET read_at = ?"
                        f" WHERE user_id = ? AND read_at IS NULL AND id IN ({source})",
                        (now, user_id, *params),
                    )
            if up_to is not None:
                cur.execute(
                    "UPDATE notifications SET read_at = ?"
                    " WHERE user_id = ? AND read_at IS NULL AND id <= ?",
                    (now, user_id, up_to),
                )
            row = cur.one(
                "SELECT count(*) FROM notifications WHERE user_id = ? AND read_at IS NULL",
                (user_id,),
            )
            return int(row[0])

        return await self._run(mark)

    def _notification(self, row: Any) -> Notification:
        to_datetime = self._dialect.to_datetime
        return Notification(
            id=int(row[0]),
            user_id=UserId(row[1]),
            kind=row[2],
            room_id=RoomId(row[3]),
            message_id=MessageId(row[4]),
            sender_id=UserId(row[5]),
            event_id=int(row[6]),
            excerpt=row[7],
            created_at=to_datetime(row[8]),
            read_at=None if row[9] is None else to_datetime(row[9]),
        )
