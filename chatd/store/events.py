"""Events about messages: edits, deletions and reactions.

Each is committed as the room's next id, under the same row lock as new
messages, so the room's sequence orders messages and events alike: a client
resuming with ?since= gets them replayed, and every instance applies them in
order. The message itself is changed in the same transaction, so history shows
its current state (text, edited_at, tombstone, reaction counts).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chatd.errors import Forbidden, MessageDeleted, NotFound, RoomClosed, TooManyReactions
from chatd.events.event import MESSAGE_EVENTS
from chatd.model import Message, MessageId, MessageKind, Reaction, RoomId, UserId
from chatd.store.mentions import add_mentions, resolve_mentions
from chatd.store.outbox import record_event
from chatd.store.sqlbase import MESSAGE_COLUMNS, SqlBase, SqlCursor, format_ids

MAX_EMOJI_PER_MESSAGE = 20


class EventsSql(SqlBase):
    async def edit_message(
        self, room_id: RoomId, message_id: MessageId, editor: UserId, text: str, now: datetime
    ) -> tuple[Message, Message]:
        """The author's new text: (the message as it now is, the edit event)."""

        def edit(cur: SqlCursor) -> tuple[Message, Message]:
            seq, count = self._lock_room(cur, room_id)
            target = self._target(cur, room_id, message_id)
            if target.user_id != editor:
                raise Forbidden("only its author may edit a message")
            mentions = resolve_mentions(cur, room_id, editor, text) if "@" in text else ()
            cur.execute(
                "UPDATE messages SET text = ?, edited_at = ?, mentions = ?"
                " WHERE room_id = ? AND seq = ?",
                (text, now, format_ids(mentions), room_id, message_id),
            )
            cur.execute(
                "DELETE FROM mentions WHERE room_id = ? AND message_id = ?", (room_id, message_id)
            )
            if mentions:
                add_mentions(cur, [(user, room_id, message_id) for user in mentions])
            event = self._add_event(
                cur, room_id, seq, count, "edited", editor, message_id, text, now, mentions
            )
            return self._target(cur, room_id, message_id), event

        return await self._run(edit)

    async def delete_message(
        self, room_id: RoomId, message_id: MessageId, by: UserId, any_author: bool, now: datetime
    ) -> Message | None:
        """Leave a tombstone; the deletion event, or None if it was deleted already.
        `any_author`: the caller may delete others' messages (an admin or the owner)."""

        def delete(cur: SqlCursor) -> Message | None:
            seq, count = self._lock_room(cur, room_id)
            target = self._target(cur, room_id, message_id, deleted_ok=True)
            if target.user_id != by and not any_author:
                raise Forbidden("only its author, an admin or the owner may delete a message")
            if target.deleted:
                return None
            cur.execute(
                "UPDATE messages SET text = '', deleted = ?, mentions = NULL"
                " WHERE room_id = ? AND seq = ?",
                (True, room_id, message_id),
            )
            for table in ("mentions", "reactions"):
                cur.execute(
                    f"DELETE FROM {table} WHERE room_id = ? AND message_id = ?",
                    (room_id, message_id),
                )
            return self._add_event(cur, room_id, seq, count, "deleted", by, message_id, "", now)

        return await self._run(delete)

    async def react(
        self,
        room_id: RoomId,
        message_id: MessageId,
        user_id: UserId,
        emoji: str,
        add: bool,
        now: datetime,
    ) -> tuple[Reaction, Message | None]:
        """Add or remove the user's emoji on a message: the message's count of it as the
        user now sees it, and the event (None when nothing changed: it is idempotent)."""

        def react(cur: SqlCursor) -> tuple[Reaction, Message | None]:
            seq, count = self._lock_room(cur, room_id)
            self._target(cur, room_id, message_id)
            key = (room_id, message_id, emoji, user_id)
            if add:
                self._check_emoji_room(cur, room_id, message_id, emoji)
                changed = cur.one(
                    "INSERT INTO reactions (room_id, message_id, emoji, user_id, created_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING user_id",
                    (*key, now),
                )
            else:
                changed = cur.one(
                    "DELETE FROM reactions WHERE room_id = ? AND message_id = ? AND emoji = ?"
                    " AND user_id = ? RETURNING user_id",
                    key,
                )
            total = int(
                cur.one(
                    "SELECT count(*) FROM reactions WHERE room_id = ? AND message_id = ?"
                    " AND emoji = ?",
                    (room_id, message_id, emoji),
                )[0]
            )
            reaction = Reaction(emoji=emoji, count=total, me=add)
            if changed is None:
                return reaction, None
            kind: MessageKind = "reaction_added" if add else "reaction_removed"
            event = self._add_event(
                cur, room_id, seq, count, kind, user_id, message_id, emoji, now, count_of=total
            )
            return reaction, event

        return await self._run(react)

    async def reactions(
        self, room_id: RoomId, first: int, last: int, viewer: UserId
    ) -> dict[MessageId, list[Reaction]]:
        """The reactions on messages first..last, per message, in the order first given."""

        def find(cur: SqlCursor) -> dict[MessageId, list[Reaction]]:
            rows = cur.all(
                "SELECT message_id, emoji, count(*),"
                " max(CASE WHEN user_id = ? THEN 1 ELSE 0 END), min(created_at)"
                " FROM reactions WHERE room_id = ? AND message_id BETWEEN ? AND ?"
                " GROUP BY message_id, emoji ORDER BY message_id, min(created_at), emoji",
                (viewer, room_id, first, last),
            )
            found: dict[MessageId, list[Reaction]] = {}
            for message_id, emoji, total, mine, _ in rows:
                found.setdefault(MessageId(message_id), []).append(
                    Reaction(emoji=emoji, count=int(total), me=bool(mine))
                )
            return found

        return await self._run(find)

    # -- within a transaction ----------------------------------------------------------

    def _lock_room(self, cur: SqlCursor, room_id: RoomId) -> tuple[int, int]:
        """(last_seq, message_count) of the room, its row locked: the next id is ours."""
        row = cur.one(
            "SELECT last_seq, message_count, closed_at FROM rooms WHERE id = ?"
            + self._dialect.for_update,
            (room_id,),
        )
        if row is None:
            raise NotFound(f"room {room_id} does not exist")
        if row[2] is not None:
            raise RoomClosed(f"room {room_id} is closed")
        return int(row[0]), int(row[1])

    def _target(
        self, cur: SqlCursor, room_id: RoomId, message_id: MessageId, *, deleted_ok: bool = False
    ) -> Message:
        row = cur.one(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND seq = ?"
            " AND kind = 'message'",
            (room_id, message_id),
        )
        if row is None:
            raise NotFound(f"room {room_id} has no message {message_id}")
        message = self._message(row)
        if message.deleted and not deleted_ok:
            raise MessageDeleted(f"message {message_id} was deleted")
        return message

    def _check_emoji_room(
        self, cur: SqlCursor, room_id: RoomId, message_id: MessageId, emoji: str
    ) -> None:
        """A message holds at most MAX_EMOJI_PER_MESSAGE different emoji."""
        rows = cur.all(
            "SELECT DISTINCT emoji FROM reactions WHERE room_id = ? AND message_id = ?",
            (room_id, message_id),
        )
        present = {row[0] for row in rows}
        if emoji not in present and len(present) >= MAX_EMOJI_PER_MESSAGE:
            raise TooManyReactions(
                f"a message carries at most {MAX_EMOJI_PER_MESSAGE} different reactions"
            )

    def _add_event(
        self,
        cur: SqlCursor,
        room_id: RoomId,
        last_seq: int,
        message_count: int,
        kind: MessageKind,
        user_id: UserId,
        target_id: MessageId,
        text: str,
        now: datetime,
        mentions: tuple[UserId, ...] = (),
        count_of: int | None = None,
    ) -> Message:
        seq = last_seq + 1
        params: tuple[Any, ...] = (
            room_id, seq, user_id, text, now, kind, target_id, message_count,
            format_ids(mentions), count_of,
        )  # fmt: skip
        cur.execute(
            "INSERT INTO messages (room_id, seq, user_id, text, created_at, kind, target_id,"
            " message_no, mentions, reaction_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params,
        )
        cur.execute("UPDATE rooms SET last_seq = ? WHERE id = ?", (seq, room_id))
        event = Message(
            id=MessageId(seq),
            room_id=room_id,
            user_id=user_id,
            text=text,
            created_at=now,
            kind=kind,
            target_id=target_id,
            mentions=mentions,
            count=count_of,
        )
        # The stream's event is the sequence entry itself, as clients see it.
        record_event(
            cur,
            MESSAGE_EVENTS[kind],
            room_id=room_id,
            actor_id=user_id,
            data=event.to_json(),
            now=now,
        )
        return event
