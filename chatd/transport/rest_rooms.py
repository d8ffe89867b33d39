"""/api/v1/rooms: rooms, their members and their history."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, request

from chatd.auth.access import owned_room, readable_room, room_or_404
from chatd.errors import Forbidden, NotFound, ValidationFailed
from chatd.model import VISIBILITIES, Room, RoomChange, RoomId, UserId, Visibility
from chatd.service import Service
from chatd.transport.http import MAX_DB_ID, authenticate, json_object, query_int, room_id_param

DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_ROOM_NAME = 100
# A room's name is shown to everyone in lists and titles, so it may hold nothing that
# hides or disguises what it says: control characters (C0, DEL, C1), line breaks, lone
# surrogates (from "\ud800" escapes: not text at all), and these format characters:
# bidi embeddings, overrides and isolates (U+202A-E, U+2066-9: "Trojan Source" reversal,
# "lobby\u202etxt.exe") and invisible ones (zero-width space, word joiner, BOM). Joiners
# (ZWJ, ZWNJ: emoji sequences, Indic and Persian script) and direction marks stay allowed.
UNSHOWABLE = frozenset({"Cc", "Cs", "Zl", "Zp"})
INVISIBLE = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u2060\ufeff")
# Quart turns a body-less Response into an asyncio-only iterator; an empty str is fine.
NO_CONTENT = ("", 204)


def room_name(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationFailed("name is required and must be a non-empty string")
    name = raw.strip()
    if len(name) > MAX_ROOM_NAME:
        raise ValidationFailed(f"name must be at most {MAX_ROOM_NAME} characters")
    if any(unicodedata.category(ch) in UNSHOWABLE or ch in INVISIBLE for ch in name):
        raise ValidationFailed(
            "name must not contain control, invisible, bidi override or surrogate characters"
        )
    return name


def visibility(raw: object) -> Visibility:
    for value in VISIBILITIES:
        if raw == value:
            return value
    raise ValidationFailed('visibility must be "public" or "private"')


def page(items: list[Any], limit: int, cursor_of: Any) -> dict[str, Any]:
    """A page of up to `limit` items out of `limit + 1` fetched: the extra one means more."""
    more = len(items) > limit
    shown = items[:limit]
    return {
        "items": [item.to_json() for item in shown],
        "next": cursor_of(shown) if more and shown else None,
    }


def room_routes(service: Service) -> Blueprint:
    bp = Blueprint("rooms", __name__)
    store, hub, bus = service.store, service.hub, service.bus

    def user() -> UserId:
        return authenticate(service.settings.jwt_secret, request.headers, request.args)

    @bp.get("/api/v1/rooms")
    async def list_rooms() -> dict[str, Any]:
        me = user()
        limit = query_int(request.args, "limit", default=DEFAULT_PAGE, low=1, high=MAX_PAGE)
        assert limit is not None
        cursor = request.args.get("cursor") or request.args.get("after")
        after = query_int({"cursor": cursor} if cursor else {}, "cursor", default=None, low=0)
        rooms = await store.rooms_visible_to(me, RoomId(after) if after else None, limit + 1)

        def cursor_of(shown: list[Room]) -> str:
            return str(shown[-1].id)

        return page(rooms, limit, cursor_of)

    @bp.post("/api/v1/rooms")
    async def create_room() -> tuple[dict[str, Any], int]:
        me = user()
        body = await json_object()
        room = await store.create_room(
            me,
            room_name(body.get("name")),
            visibility(body.get("visibility", "public")),
            datetime.now(UTC),
        )
        return room.to_json(), 201

    @bp.get("/api/v1/rooms/<int:room_id>")
    async def get_room(room_id: int) -> dict[str, Any]:
        room = await readable_room(store, room_id_param(room_id), user())
        return room.to_json()

    @bp.patch("/api/v1/rooms/<int:room_id>")
    async def update_room(room_id: int) -> dict[str, Any]:
        me = user()
        body = await json_object()
        rid = room_id_param(room_id)
        await owned_room(store, rid, me)
        if "name" not in body and "visibility" not in body:
            raise ValidationFailed("nothing to change: send name and/or visibility")
        name = room_name(body["name"]) if "name" in body else None
        new_visibility = visibility(body["visibility"]) if "visibility" in body else None
        room = await store.update_room(rid, name, new_visibility)
        if new_visibility == "private":
            # Committed, then told to every instance: there the room task reads who
            # may stay and closes the sockets of non-members (4403).
            bus.publish_nowait(RoomChange(rid, "visibility_changed"))
        return room.to_json()

    @bp.delete("/api/v1/rooms/<int:room_id>")
    async def delete_room(room_id: int) -> tuple[str, int]:
        rid = room_id_param(room_id)
        await owned_room(store, rid, user())
        await store.delete_room(rid)
        bus.publish_nowait(RoomChange(rid, "deleted"))  # every instance closes its sockets (4404)
        return NO_CONTENT

    @bp.get("/api/v1/rooms/<int:room_id>/members")
    async def list_members(room_id: int) -> dict[str, Any]:
        rid = room_id_param(room_id)
        await readable_room(store, rid, user())
        return {"items": [{"user_id": uid} for uid in await store.members(rid)]}

    @bp.get("/api/v1/rooms/<int:room_id>/presence")
    async def presence(room_id: int) -> dict[str, Any]:
        rid = room_id_param(room_id)
        await readable_room(store, rid, user())
        online = await service.presence.online(rid)
        return {"items": [{"user_id": uid} for uid in sorted(online)]}

    @bp.put("/api/v1/rooms/<int:room_id>/members/<int:user_id>")
    async def add_member(room_id: int, user_id: int) -> tuple[str, int]:
        rid = room_id_param(room_id)
        await owned_room(store, rid, user())
        if user_id > MAX_DB_ID or await store.user_by_id(UserId(user_id)) is None:
            raise NotFound(f"user {user_id} does not exist")
        await store.add_member(rid, UserId(user_id), datetime.now(UTC))
        return NO_CONTENT

    @bp.delete("/api/v1/rooms/<int:room_id>/members/<int:user_id>")
    async def remove_member(room_id: int, user_id: int) -> tuple[str, int]:
        me = user()
        rid = room_id_param(room_id)
        room = await room_or_404(store, rid)
        if me not in (room.owner_id, user_id):
            raise Forbidden("only the owner may remove someone else")
        if user_id == room.owner_id:
            raise ValidationFailed("the owner cannot leave their own room; delete it instead")
        await store.remove_member(rid, UserId(user_id))
        # Every instance closes the user's sockets in the room if it is private (4403).
        bus.publish_nowait(RoomChange(rid, "member_removed", UserId(user_id)))
        return NO_CONTENT

    @bp.get("/api/v1/rooms/<int:room_id>/messages")
    async def history(room_id: int) -> dict[str, Any]:
        rid = room_id_param(room_id)
        await readable_room(store, rid, user())
        limit = query_int(request.args, "limit", default=DEFAULT_PAGE, low=1, high=MAX_PAGE)
        assert limit is not None
        before = query_int(request.args, "before", default=None, low=1)
        if before is None:
            newest_first = await service.history.newest(rid, limit + 1, hub.last_id(rid))
        else:
            newest_first = await store.messages_before(rid, before, limit + 1)
        # The extra message fetched is the oldest: drop it from the front, not the end.
        more = len(newest_first) > limit
        shown = newest_first[1:] if more else newest_first
        return {
            "items": [message.to_json() for message in shown],
            "next": shown[0].id if more else None,
        }

    return bp
