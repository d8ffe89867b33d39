"""/api/v1/rooms/{id}/messages, /read, /reads: history, edits, deletions, reactions,
and read state.

An edit, a deletion or a reaction is committed as the room's next id, then
published like a message: every instance's room task delivers it in order
(docs/protocol.md). A watermark move is published as a RoomChange, throttled.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, request

from chatd.auth.access import MANAGERS, member_room, readable_room
from chatd.errors import ValidationFailed
from chatd.model import Message, MessageId, RoomId, UserId
from chatd.service import Service
from chatd.tracing.messages import in_current_trace
from chatd.transport.http import MAX_DB_ID, authenticate, json_object, query_int, room_id_param
from chatd.transport.rest_rooms import DEFAULT_PAGE, MAX_PAGE, NO_CONTENT
from chatd.transport.text import encodable, text_problem

MAX_EMOJI_CHARS = 16
# What an emoji may not hold: control, line and format characters other than the
# joiners and variation selectors that emoji sequences are made of, and spaces.
_EMOJI_PARTS = frozenset({"\u200d", "\ufe0e", "\ufe0f"})


def emoji_param(raw: str) -> str:
    if not 1 <= len(raw) <= MAX_EMOJI_CHARS:
        raise ValidationFailed(f"an emoji is 1 to {MAX_EMOJI_CHARS} characters")
    for ch in raw:
        category = unicodedata.category(ch)
        if (
            ch.isspace()
            or category in ("Cc", "Cs", "Zl", "Zp", "Zs")
            or (category == "Cf" and ch not in _EMOJI_PARTS)
        ):
            raise ValidationFailed("an emoji may not hold spaces, control or format characters")
    if not encodable(raw):
        raise ValidationFailed("an emoji must be valid Unicode")
    return raw


def message_id_param(raw: int) -> MessageId:
    if raw > MAX_DB_ID:
        raise ValidationFailed("message_id is out of range")
    return MessageId(raw)


def message_routes(service: Service) -> Blueprint:
    bp = Blueprint("messages", __name__)
    store, bus, settings = service.store, service.bus, service.settings

    def user() -> UserId:
        return authenticate(settings.jwt_secret, request.headers, request.args)

    def publish(event: Message | None) -> None:
        if event is not None:
            # Committed: every instance's room delivers it in order (in this request's trace).
            bus.publish_nowait(in_current_trace(event))

    @bp.get("/api/v1/rooms/<int:room_id>/messages")
    async def history(room_id: int) -> dict[str, Any]:
        me, rid = user(), room_id_param(room_id)
        await readable_room(store, rid, me)
        limit = query_int(request.args, "limit", default=DEFAULT_PAGE, low=1, high=MAX_PAGE)
        assert limit is not None
        before = query_int(request.args, "before", default=None, low=1)
        # Current state (edits, tombstones) and the caller's view of the reactions: from
        # the store, whose copy is never stale.
        newest_first = await store.messages_before(rid, before, limit + 1)
        # The extra message fetched is the oldest: drop it from the front, not the end.
        more = len(newest_first) > limit
        shown = newest_first[1:] if more else newest_first
        reactions = await store.reactions(rid, shown[0].id, shown[-1].id, me) if shown else {}
        items = []
        for message in shown:
            body = message.to_json()
            if found := reactions.get(message.id):
                body["reactions"] = [reaction.to_json() for reaction in found]
            items.append(body)
        return {"items": items, "next": shown[0].id if more else None}

    @bp.patch("/api/v1/rooms/<int:room_id>/messages/<int:message_id>")
    async def edit(room_id: int, message_id: int) -> dict[str, Any]:
        me, rid = user(), room_id_param(room_id)
        body = await json_object()
        text = body.get("text")
        if (problem := text_problem(text, settings.max_text_chars)) is not None:
            raise ValidationFailed(problem[1])
        assert isinstance(text, str)
        await readable_room(store, rid, me)
        current, event = await store.edit_message(
            rid, message_id_param(message_id), me, text, datetime.now(UTC)
        )
        publish(event)
        return current.to_json()

    @bp.delete("/api/v1/rooms/<int:room_id>/messages/<int:message_id>")
    async def delete(room_id: int, message_id: int) -> tuple[str, int]:
        me, rid = user(), room_id_param(room_id)
        room = await readable_room(store, rid, me)
        role = await store.role_of(rid, me)
        any_author = room.kind == "room" and role in MANAGERS
        publish(
            await store.delete_message(
                rid, message_id_param(message_id), me, any_author, datetime.now(UTC)
            )
        )
        return NO_CONTENT

    async def react(room_id: int, message_id: int, emoji: str, add: bool) -> dict[str, Any]:
        me, rid = user(), room_id_param(room_id)
        chosen = emoji_param(emoji)
        await readable_room(store, rid, me)
        target = message_id_param(message_id)
        reaction, event = await store.react(rid, target, me, chosen, add, datetime.now(UTC))
        publish(event)
        return {"message_id": target, **reaction.to_json()}

    @bp.put("/api/v1/rooms/<int:room_id>/messages/<int:message_id>/reactions/<path:emoji>")
    async def add_reaction(room_id: int, message_id: int, emoji: str) -> dict[str, Any]:
        return await react(room_id, message_id, emoji, add=True)

    @bp.delete("/api/v1/rooms/<int:room_id>/messages/<int:message_id>/reactions/<path:emoji>")
    async def remove_reaction(room_id: int, message_id: int, emoji: str) -> dict[str, Any]:
        return await react(room_id, message_id, emoji, add=False)

    # -- read state ----------------------------------------------------------------

    @bp.post("/api/v1/rooms/<int:room_id>/read")
    async def mark_read(room_id: int) -> dict[str, Any]:
        me, rid = user(), room_id_param(room_id)
        body = await json_object()
        raw = body.get("message_id")
        if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= MAX_DB_ID:
            raise ValidationFailed("message_id must be a message id (a non-negative integer)")
        room, _ = await member_room(store, rid, me)
        membership, moved = await store.mark_read(rid, me, raw)
        if moved and await _shows_seen_by(rid, room.kind):
            service.reads.moved(rid, me, membership.last_read_id)
        return {
            "last_read_id": membership.last_read_id,
            "unread": membership.unread,
            "mentions": membership.mentions,
        }

    @bp.get("/api/v1/rooms/<int:room_id>/reads")
    async def reads(room_id: int) -> dict[str, Any]:
        me, rid = user(), room_id_param(room_id)
        room = await readable_room(store, rid, me)
        if not await _shows_seen_by(rid, room.kind):
            return {"items": [], "seen_by": False}
        marks = await store.reads(rid)
        return {
            "items": [{"user_id": uid, "last_read_id": last} for uid, last in marks],
            "seen_by": True,
        }

    async def _shows_seen_by(rid: RoomId, kind: str) -> bool:
        """DMs and small rooms show who has seen what."""
        if kind == "dm":
            return True
        return await store.member_count(rid) <= settings.seen_by_max_members

    return bp
