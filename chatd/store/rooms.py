"""Rooms and who is in them: kinds and roles, DMs, invitations, read watermarks.

Who may do what is decided above (chatd/auth/access.py); here each change is
one transaction that keeps the data whole: the owner's role and rooms.owner_id
move together, a DM exists once per set of people, a watermark only moves
forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from chatd.errors import AlreadyInvited, AlreadyMember, NotFound
from chatd.events.event import EventType
from chatd.model import (
    Invite,
    Membership,
    Role,
    Room,
    RoomId,
    RoomKind,
    RoomMember,
    User,
    UserId,
    Visibility,
    handle_of,
)
from chatd.store.mentions import like_prefix
from chatd.store.outbox import record_event
from chatd.store.sqlbase import R_COLUMNS, ROOM_COLUMNS, SqlBase, SqlCursor

# The caller's membership beside a room's columns: role, watermark, unread, mentions.
# Unread is two counters apart; mentions a range scan of the caller's mention rows.
_MEMBERSHIP = (
    "rm.role, rm.last_read_id, r.message_count - rm.read_count,"
    " (SELECT count(*) FROM mentions mn WHERE mn.user_id = rm.user_id"
    "  AND mn.room_id = r.id AND mn.message_id > rm.last_read_id)"
)
_ROOM_WIDTH = len(ROOM_COLUMNS.split(","))
_INVITE = (
    "SELECT i.room_id, r.name, i.user_id, i.invited_by, i.created_at"
    " FROM room_invites i JOIN rooms r ON r.id = i.room_id"
)


class RoomsSql(SqlBase):
    # -- rooms --------------------------------------------------------------------

    async def create_room(
        self, owner_id: UserId, name: str, visibility: Visibility, now: datetime
    ) -> Room:
        def create(cur: SqlCursor) -> Room:
            row = cur.one(
                "INSERT INTO rooms (name, visibility, owner_id, created_at) VALUES (?, ?, ?, ?)"
                " RETURNING " + ROOM_COLUMNS,
                (name, visibility, owner_id, now),
            )
            cur.execute(
                "INSERT INTO room_members (room_id, user_id, joined_at, role)"
                " VALUES (?, ?, ?, 'owner')",
                (row[0], owner_id, now),
            )
            room = self._room(row)
            _record_room(cur, "room.created", room, owner_id, now)
            return room

        return await self._run(create)

    async def room(self, room_id: RoomId) -> Room | None:
        def find(cur: SqlCursor) -> Room | None:
            row = cur.one(f"SELECT {ROOM_COLUMNS} FROM rooms WHERE id = ?", (room_id,))
            return None if row is None else self._with_members(cur, [row])[0]

        return await self._run(find)

    async def room_for(
        self, room_id: RoomId, user_id: UserId
    ) -> tuple[Room, Membership | None] | None:
        """The room and the user's membership of it (None if not a member)."""

        def find(cur: SqlCursor) -> tuple[Room, Membership | None] | None:
            row = cur.one(
                f"SELECT {R_COLUMNS}, {_MEMBERSHIP} FROM rooms r"
                " LEFT JOIN room_members rm ON rm.room_id = r.id AND rm.user_id = ?"
                " WHERE r.id = ?",
                (user_id, room_id),
            )
            if row is None:
                return None
            return self._with_members(cur, [row])[0], _membership(row)

        return await self._run(find)

    async def rooms_visible_to(
        self,
        user_id: UserId,
        after: RoomId | None,
        limit: int,
        *,
        kind: RoomKind | None = None,
        joined: bool = False,
    ) -> list[tuple[Room, Membership | None]]:
        """Public rooms and the user's own, in id order, each with the user's membership."""

        def find(cur: SqlCursor) -> list[tuple[Room, Membership | None]]:
            where = ["r.id > ?"]
            params: list[Any] = [user_id, after or 0]
            if joined:
                where.append("rm.user_id IS NOT NULL")
            else:
                where.append(
                    "(rm.user_id IS NOT NULL OR (r.visibility = 'public' AND r.kind = 'room'))"
                )
            if kind is not None:
                where.append("r.kind = ?")
                params.append(kind)
            rows = cur.all(
                f"SELECT {R_COLUMNS}, {_MEMBERSHIP} FROM rooms r"
                " LEFT JOIN room_members rm ON rm.room_id = r.id AND rm.user_id = ?"
                f" WHERE {' AND '.join(where)} ORDER BY r.id LIMIT ?",
                (*params, limit),
            )
            rooms = self._with_members(cur, rows)
            return [(room, _membership(row)) for room, row in zip(rooms, rows, strict=True)]

        return await self._run(find)

    def _with_members(self, cur: SqlCursor, rows: Sequence[Any]) -> list[Room]:
        """Rooms of these rows, each DM with its member ids (one query for all of them)."""
        dms = [(row[0],) for row in rows if row[5] == "dm"]
        members: dict[int, list[UserId]] = {}
        for source, params in self._dialect.row_queries(("bigint",), dms):
            for room_id, member in cur.all(
                f"SELECT room_id, user_id FROM room_members WHERE room_id IN ({source})"
                " ORDER BY room_id, user_id",
                params,
            ):
                members.setdefault(room_id, []).append(UserId(member))
        return [self._room(row, members.get(row[0], ())) for row in rows]

    async def update_room(
        self,
        room_id: RoomId,
        name: str | None,
        visibility: Visibility | None,
        *,
        actor: UserId | None = None,
    ) -> Room:
        def update(cur: SqlCursor) -> Room:
            row = cur.one(
                "UPDATE rooms SET name = COALESCE(?, name), visibility = COALESCE(?, visibility)"
                " WHERE id = ? RETURNING " + ROOM_COLUMNS,
                (name, visibility, room_id),
            )
            if row is None:
                raise NotFound(f"room {room_id} does not exist")
            room = self._room(row)
            _record_room(cur, "room.updated", room, actor, datetime.now(UTC))
            return room

        return await self._run(update)

    async def delete_room(self, room_id: RoomId, *, actor: UserId | None = None) -> None:
        def delete(cur: SqlCursor) -> None:
            row = cur.one(
                f"SELECT {ROOM_COLUMNS} FROM rooms WHERE id = ?" + self._dialect.for_update,
                (room_id,),
            )
            if row is None:
                raise NotFound(f"room {room_id} does not exist")
            room = self._with_members(cur, [row])[0]  # as it was, a DM with its members
            # Its messages first, in one statement (their reactions and mentions cascade).
            cur.execute("DELETE FROM messages WHERE room_id = ?", (room_id,))
            cur.execute("DELETE FROM room_members WHERE room_id = ?", (room_id,))
            cur.execute("DELETE FROM rooms WHERE id = ?", (room_id,))
            _record_room(cur, "room.deleted", room, actor, datetime.now(UTC))

        await self._run(delete)

    async def open_dm(
        self, user_ids: Sequence[UserId], now: datetime, *, actor: UserId | None = None
    ) -> tuple[Room, bool, list[UserId]]:
        """The one DM of exactly these people, created if need be: (room, created, and
        who is back in it, having left it before).

        Concurrent opens of one set all get the same room: the insert of its key
        waits for (or loses to) the other's, and then the room is read.
        """
        people = sorted(set(user_ids))
        key = ",".join(map(str, people))

        def open_(cur: SqlCursor) -> tuple[Room, bool, list[UserId]]:
            row = cur.one(
                "INSERT INTO rooms (name, visibility, owner_id, created_at, kind, dm_key)"
                " VALUES ('', 'private', NULL, ?, 'dm', ?)"
                " ON CONFLICT (dm_key) WHERE dm_key IS NOT NULL DO NOTHING"
                " RETURNING " + ROOM_COLUMNS,
                (now, key),
            )
            created = row is not None
            if row is None:
                row = cur.one(f"SELECT {ROOM_COLUMNS} FROM rooms WHERE dm_key = ?", (key,))
            # Whoever left a group DM is back in it when it is opened again.
            room_id = RoomId(row[0])
            added = [p for p in people if _add_member(cur, room_id, p, now, "member")]
            room = self._with_members(cur, [row])[0]
            if created:  # its members are in the event's member_ids
                _record_room(cur, "room.created", room, actor, now)
                return room, True, []
            for person in added:
                _record_member(cur, "joined", room_id, person, "member", actor, now)
            return room, False, added

        return await self._run(open_)

    # -- members ------------------------------------------------------------------

    async def is_member(self, room_id: RoomId, user_id: UserId) -> bool:
        return await self.role_of(room_id, user_id) is not None

    async def role_of(self, room_id: RoomId, user_id: UserId) -> Role | None:
        def find(cur: SqlCursor) -> Role | None:
            row = cur.one(
                "SELECT role FROM room_members WHERE room_id = ? AND user_id = ?",
                (room_id, user_id),
            )
            return None if row is None else row[0]

        return await self._run(find)

    async def add_member(
        self,
        room_id: RoomId,
        user_id: UserId,
        now: datetime,
        role: Role = "member",
        *,
        actor: UserId | None = None,
    ) -> bool:
        """True if the user was not a member before. A new member has read what came before.
        `actor`: who added them (None: they joined)."""

        def add(cur: SqlCursor) -> bool:
            if not _add_member(cur, room_id, user_id, now, role):
                return False
            _record_member(cur, "joined", room_id, user_id, role, actor, now)
            return True

        return await self._run(add)

    async def remove_member(
        self, room_id: RoomId, user_id: UserId, *, actor: UserId | None = None
    ) -> bool:
        """True if they were a member. `actor`: who removed them (None: they left)."""

        def remove(cur: SqlCursor) -> bool:
            row = cur.one(
                "DELETE FROM room_members WHERE room_id = ? AND user_id = ? RETURNING role",
                (room_id, user_id),
            )
            if row is None:
                return False
            _record_member(cur, "left", room_id, user_id, row[0], actor, datetime.now(UTC))
            return True

        return await self._run(remove)

    async def members(self, room_id: RoomId) -> list[UserId]:
        def find(cur: SqlCursor) -> list[UserId]:
            rows = cur.all(
                "SELECT user_id FROM room_members WHERE room_id = ? ORDER BY user_id", (room_id,)
            )
            return [UserId(row[0]) for row in rows]

        return await self._run(find)

    async def member_list(self, room_id: RoomId) -> list[RoomMember]:
        def find(cur: SqlCursor) -> list[RoomMember]:
            rows = cur.all(
                "SELECT rm.user_id, u.email, rm.role, rm.joined_at, rm.last_read_id"
                " FROM room_members rm JOIN users u ON u.id = rm.user_id"
                " WHERE rm.room_id = ? ORDER BY rm.user_id",
                (room_id,),
            )
            return [self._room_member(row) for row in rows]

        return await self._run(find)

    async def member_count(self, room_id: RoomId) -> int:
        def count(cur: SqlCursor) -> int:
            return int(
                cur.one("SELECT count(*) FROM room_members WHERE room_id = ?", (room_id,))[0]
            )

        return await self._run(count)

    async def set_role(
        self, room_id: RoomId, user_id: UserId, role: Role, *, actor: UserId | None = None
    ) -> RoomMember:
        """Make a member an admin or a member; NotFound if they are not one."""

        def update(cur: SqlCursor) -> RoomMember:
            row = cur.one(
                "UPDATE room_members SET role = ? WHERE room_id = ? AND user_id = ?"
                " AND role <> 'owner' RETURNING user_id",
                (role, room_id, user_id),
            )
            if row is None:
                raise NotFound(f"user {user_id} is not a member of room {room_id} (or owns it)")
            record_event(
                cur,
                "member.role_changed",
                room_id=room_id,
                actor_id=actor,
                data={"user_id": user_id, "role": role},
                now=datetime.now(UTC),
            )
            return self._member_row(cur, room_id, user_id)

        return await self._run(update)

    async def transfer_owner(
        self, room_id: RoomId, new_owner: UserId, *, actor: UserId | None = None
    ) -> Room:
        """Hand the room to a member; the old owner stays, as an admin."""

        def transfer(cur: SqlCursor) -> Room:
            if (
                cur.one(
                    "SELECT 1 FROM room_members WHERE room_id = ? AND user_id = ?",
                    (room_id, new_owner),
                )
                is None
            ):
                raise NotFound(f"user {new_owner} is not a member of room {room_id}")
            cur.execute(
                "UPDATE room_members SET role = 'admin' WHERE room_id = ? AND role = 'owner'",
                (room_id,),
            )
            cur.execute(
                "UPDATE room_members SET role = 'owner' WHERE room_id = ? AND user_id = ?",
                (room_id, new_owner),
            )
            before = cur.one("SELECT owner_id FROM rooms WHERE id = ?", (room_id,))
            row = cur.one(
                "UPDATE rooms SET owner_id = ? WHERE id = ? RETURNING " + ROOM_COLUMNS,
                (new_owner, room_id),
            )
            room = self._room(row)
            _record_room(
                cur,
                "room.updated",
                room,
                actor,
                datetime.now(UTC),
                previous_owner_id=None if before is None else before[0],
            )
            return room

        return await self._run(transfer)

    def _member_row(self, cur: SqlCursor, room_id: RoomId, user_id: UserId) -> RoomMember:
        row = cur.one(
            "SELECT rm.user_id, u.email, rm.role, rm.joined_at, rm.last_read_id"
            " FROM room_members rm JOIN users u ON u.id = rm.user_id"
            " WHERE rm.room_id = ? AND rm.user_id = ?",
            (room_id, user_id),
        )
        return self._room_member(row)

    def _room_member(self, row: Any) -> RoomMember:
        return RoomMember(
            user_id=UserId(row[0]),
            handle=handle_of(row[1]),
            role=row[2],
            joined_at=self._dialect.to_datetime(row[3]),
            last_read_id=int(row[4]),
        )

    # -- invitations ----------------------------------------------------------------

    async def invite(
        self, room_id: RoomId, user_id: UserId, invited_by: UserId, now: datetime
    ) -> Invite:
        def invite(cur: SqlCursor) -> Invite:
            if cur.one(
                "SELECT 1 FROM room_members WHERE room_id = ? AND user_id = ?",
                (room_id, user_id),
            ):
                raise AlreadyMember(f"user {user_id} is already a member of room {room_id}")
            row = cur.one(
                "INSERT INTO room_invites (room_id, user_id, invited_by, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING room_id",
                (room_id, user_id, invited_by, now),
            )
            if row is None:
                raise AlreadyInvited(f"user {user_id} is already invited to room {room_id}")
            found = self._invite(cur, room_id, user_id)
            assert found is not None
            return found

        return await self._run(invite)

    async def invite_of(self, room_id: RoomId, user_id: UserId) -> Invite | None:
        return await self._run(lambda cur: self._invite(cur, room_id, user_id))

    async def room_invites(self, room_id: RoomId) -> list[Invite]:
        def find(cur: SqlCursor) -> list[Invite]:
            rows = cur.all(_INVITE + " WHERE i.room_id = ? ORDER BY i.user_id", (room_id,))
            return [self._invite_of_row(row) for row in rows]

        return await self._run(find)

    async def user_invites(self, user_id: UserId) -> list[Invite]:
        def find(cur: SqlCursor) -> list[Invite]:
            rows = cur.all(
                _INVITE + " WHERE i.user_id = ? ORDER BY i.created_at, i.room_id", (user_id,)
            )
            return [self._invite_of_row(row) for row in rows]

        return await self._run(find)

    async def withdraw_invite(self, room_id: RoomId, user_id: UserId) -> bool:
        def withdraw(cur: SqlCursor) -> bool:
            row = cur.one(
                "DELETE FROM room_invites WHERE room_id = ? AND user_id = ? RETURNING room_id",
                (room_id, user_id),
            )
            return row is not None

        return await self._run(withdraw)

    async def accept_invite(self, room_id: RoomId, user_id: UserId, now: datetime) -> bool:
        """The invitation is spent and the user is a member; False if there was none."""

        def accept(cur: SqlCursor) -> bool:
            row = cur.one(
                "DELETE FROM room_invites WHERE room_id = ? AND user_id = ? RETURNING invited_by",
                (room_id, user_id),
            )
            if row is None:
                return False
            if _add_member(cur, room_id, user_id, now, "member"):
                _record_member(
                    cur, "joined", room_id, user_id, "member", None, now, invited_by=row[0]
                )
            return True

        return await self._run(accept)

    def _invite(self, cur: SqlCursor, room_id: RoomId, user_id: UserId) -> Invite | None:
        row = cur.one(_INVITE + " WHERE i.room_id = ? AND i.user_id = ?", (room_id, user_id))
        return None if row is None else self._invite_of_row(row)

    def _invite_of_row(self, row: Any) -> Invite:
        return Invite(
            room_id=RoomId(row[0]),
            room_name=row[1],
            user_id=UserId(row[2]),
            invited_by=UserId(row[3]),
            created_at=self._dialect.to_datetime(row[4]),
        )

    # -- read state -----------------------------------------------------------------

    async def mark_read(
        self, room_id: RoomId, user_id: UserId, message_id: int
    ) -> tuple[Membership, bool]:
        """Move the member's watermark forward to message_id (clamped to the room's newest);
        never back: (the membership now, whether it moved). NotFound if not a member."""

        def mark(cur: SqlCursor) -> tuple[Membership, bool]:
            row = cur.one(
                "SELECT r.last_seq FROM rooms r JOIN room_members rm ON rm.room_id = r.id"
                " WHERE r.id = ? AND rm.user_id = ?",
                (room_id, user_id),
            )
            if row is None:
                raise NotFound(f"you are not a member of room {room_id}")
            target = min(message_id, int(row[0]))
            counted = cur.one(
                "SELECT message_no FROM messages WHERE room_id = ? AND seq <= ?"
                " ORDER BY seq DESC LIMIT 1",
                (room_id, target),
            )
            moved = (
                counted is not None
                and cur.one(
                    "UPDATE room_members SET last_read_id = ?, read_count = ?"
                    " WHERE room_id = ? AND user_id = ? AND last_read_id < ? RETURNING user_id",
                    (target, counted[0] or 0, room_id, user_id, target),
                )
                is not None
            )
            membership = self._membership_of(cur, room_id, user_id)
            assert membership is not None
            return membership, moved

        return await self._run(mark)

    def _membership_of(self, cur: SqlCursor, room_id: RoomId, user_id: UserId) -> Membership | None:
        row = cur.one(
            f"SELECT {R_COLUMNS}, {_MEMBERSHIP} FROM rooms r"
            " JOIN room_members rm ON rm.room_id = r.id AND rm.user_id = ? WHERE r.id = ?",
            (user_id, room_id),
        )
        return None if row is None else _membership(row)

    async def reads(self, room_id: RoomId) -> list[tuple[UserId, int]]:
        """Each member's watermark: who has seen what."""

        def find(cur: SqlCursor) -> list[tuple[UserId, int]]:
            rows = cur.all(
                "SELECT user_id, last_read_id FROM room_members WHERE room_id = ? ORDER BY user_id",
                (room_id,),
            )
            return [(UserId(row[0]), int(row[1])) for row in rows]

        return await self._run(find)

    # -- people ---------------------------------------------------------------------

    async def users_by_handle(self, prefix: str, limit: int) -> list[User]:
        def find(cur: SqlCursor) -> list[User]:
            rows = cur.all(
                "SELECT id, email FROM users WHERE email_key LIKE ? ESCAPE '!'"
                " ORDER BY email_key LIMIT ?",
                (like_prefix(prefix.casefold()), limit),
            )
            return [User(id=UserId(row[0]), email=row[1]) for row in rows]

        return await self._run(find)

    async def existing_users(self, user_ids: Sequence[UserId]) -> set[UserId]:
        def find(cur: SqlCursor) -> set[UserId]:
            found: set[UserId] = set()
            rows = [(u,) for u in user_ids]
            for source, params in self._dialect.row_queries(("bigint",), rows):
                found.update(
                    UserId(row[0])
                    for row in cur.all(f"SELECT id FROM users WHERE id IN ({source})", params)
                )
            return found

        return await self._run(find)


def _add_member(
    cur: SqlCursor, room_id: RoomId, user_id: UserId, now: datetime, role: Role
) -> bool:
    row = cur.one(
        "INSERT INTO room_members (room_id, user_id, joined_at, role, last_read_id, read_count)"
        " SELECT id, ?, ?, ?, last_seq, message_count FROM rooms WHERE id = ?"
        " ON CONFLICT DO NOTHING RETURNING user_id",
        (user_id, now, role, room_id),
    )
    return row is not None


def _membership(row: Any) -> Membership | None:
    """The membership columns after a room's, or None where the LEFT JOIN found none."""
    role, last_read_id, unread, mentions = row[_ROOM_WIDTH : _ROOM_WIDTH + 4]
    if role is None:
        return None
    return Membership(
        role=role, last_read_id=int(last_read_id), unread=int(unread), mentions=int(mentions)
    )


def _record_room(
    cur: SqlCursor,
    type: EventType,
    room: Room,
    actor: UserId | None,
    now: datetime,
    **extra: Any,
) -> None:
    """A room's event: the room as clients see it (a DM with its member ids)."""
    record_event(
        cur, type, room_id=room.id, actor_id=actor, data={**room.to_json(), **extra}, now=now
    )


def _record_member(
    cur: SqlCursor,
    change: str,
    room_id: RoomId,
    user_id: UserId,
    role: Role,
    actor: UserId | None,
    now: datetime,
    **extra: Any,
) -> None:
    """member.joined/left when the user did it themselves (no actor, or the actor is
    them), member.added/removed when someone else did; actor_id is who acted."""
    own = actor is None or actor == user_id
    type: EventType
    if change == "joined":
        type = "member.joined" if own else "member.added"
    else:
        type = "member.left" if own else "member.removed"
    record_event(
        cur,
        type,
        room_id=room_id,
        actor_id=user_id if actor is None else actor,
        data={"user_id": user_id, "role": role, **extra},
        now=now,
    )
