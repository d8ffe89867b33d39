"""/api/v1/rooms: rooms, their kinds, who is in them and with what role.

Every change is committed, then published on the bus as a RoomChange, so
that every instance's room task tells its sockets and closes those that lost
access (docs/protocol.md). No handler reaches into the local hub.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, request

from chatd.auth.access import (
    managed_room,
    may_remove,
    owned_room,
    readable_room,
    room_or_404,
)
from chatd.errors import (
    CannotLeaveDm,
    Forbidden,
    NotFound,
    OwnerCannotLeave,
    ValidationFailed,
)
from chatd.model import (
    NOT_A_MEMBER,
    VISIBILITIES,
    Membership,
    Role,
    Room,
    RoomChange,
    RoomId,
    RoomKind,
    UserId,
    Visibility,
)
from chatd.service import Service
from chatd.store import Store
from chatd.transport.http import (
    MAX_DB_ID,
    authenticate,
    json_object,
    query_int,
    room_id_param,
)

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
ASSIGNABLE_ROLES: tuple[Role, ...] = ("admin", "member")


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
    raise ValidationFailed('visibility must be "public", "private" or "invite"')


def room_json(room: Room, membership: Membership | None) -> dict[str, Any]:
    """A room as its caller sees it: with their role and unread counts, or nulls."""
    return {**room.to_json(), **(NOT_A_MEMBER if membership is None else membership.to_json())}


async def room_seen_by(store: Store, room_id: RoomId, user_id: UserId) -> dict[str, Any]:
    found = await store.room_for(room_id, user_id)
    if found is None:
        raise NotFound(f"room {room_id} does not exist")
    return room_json(*found)


def user_id_field(body: dict[str, Any], name: str = "user_id") -> UserId:
    raw = body.get(name)
    if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= MAX_DB_ID:
        raise ValidationFailed(f"{name} must be a user id (a positive integer)")
    return UserId(raw)


def user_id_param(raw: int) -> UserId:
    if raw > MAX_DB_ID:
        raise NotFound(f"user {raw} does not exist")
    return UserId(raw)


def room_routes(service: Service) -> Blueprint:
    bp = Blueprint("rooms", __name__)
    store, bus = service.store, service.bus

    def user() -> UserId:
        return authenticate(service.settings.jwt_secret, request.headers, request.args)

    async def as_seen_by(room_id: RoomId, me: UserId) -> dict[str, Any]:
        return await room_seen_by(store, room_id, me)

    async def existing_user(user_id: UserId) -> UserId:
        if await store.user_by_id(user_id) is None:
            raise NotFound(f"user {user_id} does not exist")
        return user_id

    @bp.get("/api/v1/rooms")
    async def list_rooms() -> dict[str, Any]:
        me = user()
        args = request.args
        limit = query_int(args, "limit", default=DEFAULT_PAGE, low=1, high=MAX_PAGE)
        assert limit is not None
        cursor = args.get("cursor") or args.get("after")
        after = query_int({"cursor": cursor} if cursor else {}, "cursor", default=None, low=0)
        kind = args.get("kind")
        if kind not in (None, "room", "dm"):
            raise ValidationFailed('kind must be "room" or "dm"')
        joined = args.get("joined")
        if joined not in (None, "true", "false"):
            raise ValidationFailed('joined must be "true" or "false"')
        found = await store.rooms_visible_to(
            me,
            RoomId(after) if after else None,
            limit + 1,
            kind=_room_kind(kind),
            joined=joined == "true",
        )
        shown = found[:limit]
        more = len(found) > limit
        return {
            "items": [room_json(room, membership) for room, membership in shown],
            "next": str(shown[-1][0].id) if more and shown else None,
        }

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
        return await as_seen_by(room.id, me), 201

    @bp.get("/api/v1/rooms/<int:room_id>")
    async def get_room(room_id: int) -> dict[str, Any]:
        me, rid = user(), room_id_param(room_id)
        await readable_room(store, rid, me)
        return await as_seen_by(rid, me)

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
        await store.update_room(rid, name, new_visibility, actor=me)
        # Committed, then told to every instance: there the room task sends the room as
        # it now is, and, if it turned members-only, closes the sockets of non-members.
        bus.publish_nowait(
            RoomChange(rid, "visibility_changed" if new_visibility else "room_updated")
        )
        return await as_seen_by(rid, me)

    @bp.delete("/api/v1/rooms/<int:room_id>")
    async def delete_room(room_id: int) -> tuple[str, int]:
        me, rid = user(), room_id_param(room_id)
        await owned_room(store, rid, me)
        await store.delete_room(rid, actor=me)
        bus.publish_nowait(RoomChange(rid, "deleted"))  # every instance closes its sockets (4404)
        return NO_CONTENT

    # -- joining and leaving -------------------------------------------------------

    @bp.post("/api/v1/rooms/<int:room_id>/join")
    async def join(room_id: int) -> dict[str, Any]:
        me, rid = user(), room_id_param(room_id)
        room = await room_or_404(store, rid)
        now = datetime.now(UTC)
        if await store.is_member(rid, me):
            return await as_seen_by(rid, me)
        if room.kind == "dm":
            raise Forbidden("nobody joins a DM: open your own with POST /api/v1/dms")
        if room.visibility == "private":
            raise Forbidden(f"room {rid} is private: its owner or an admin adds members")
        if room.visibility == "invite":
            if not await store.accept_invite(rid, me, now):
                raise Forbidden(f"room {rid} is by invitation only, and you have none")
        else:
            await store.add_member(rid, me, now)
        bus.publish_nowait(RoomChange(rid, "member_added", me, "member"))
        return await as_seen_by(rid, me)

    @bp.post("/api/v1/rooms/<int:room_id>/leave")
    async def leave(room_id: int) -> tuple[str, int]:
        me, rid = user(), room_id_param(room_id)
        await leave_room(rid, me)
        return NO_CONTENT

    async def leave_room(rid: RoomId, me: UserId) -> None:
        room = await room_or_404(store, rid)
        role = await store.role_of(rid, me)
        if role is None:
            raise NotFound(f"you are not a member of room {rid}")
        if role == "owner":
            raise OwnerCannotLeave("hand the room to another member first, or delete it")
        if room.kind == "dm" and len(room.member_ids) <= 2:
            raise CannotLeaveDm("a DM between two people cannot be left")
        if await store.remove_member(rid, me, actor=me):
            bus.publish_nowait(RoomChange(rid, "member_removed", me, "left"))

    # -- members and roles ---------------------------------------------------------

    @bp.get("/api/v1/rooms/<int:room_id>/members")
    async def list_members(room_id: int) -> dict[str, Any]:
        rid = room_id_param(room_id)
        await readable_room(store, rid, user())
        return {"items": [member.to_json() for member in await store.member_list(rid)]}

    @bp.get("/api/v1/rooms/<int:room_id>/presence")
    async def presence(room_id: int) -> dict[str, Any]:
        rid = room_id_param(room_id)
        await readable_room(store, rid, user())
        online = await service.presence.online(rid)
        return {"items": [{"user_id": uid} for uid in sorted(online)]}

    @bp.put("/api/v1/rooms/<int:room_id>/members/<int:user_id>")
    async def add_member(room_id: int, user_id: int) -> tuple[str, int]:
        me, rid = user(), room_id_param(room_id)
        await managed_room(store, rid, me)
        target = await existing_user(user_id_param(user_id))
        if await store.add_member(rid, target, datetime.now(UTC), actor=me):
            await store.withdraw_invite(rid, target)  # an invitation is moot now
            bus.publish_nowait(RoomChange(rid, "member_added", target, "member"))
        return NO_CONTENT

    @bp.delete("/api/v1/rooms/<int:room_id>/members/<int:user_id>")
    async def remove_member(room_id: int, user_id: int) -> tuple[str, int]:
        me, rid, target = user(), room_id_param(room_id), user_id_param(user_id)
        if target == me:
            await leave_room(rid, me)
            return NO_CONTENT
        room = await room_or_404(store, rid)
        if room.kind == "dm":
            raise Forbidden("nobody removes anyone from a DM")
        actor, role = await store.role_of(rid, me), await store.role_of(rid, target)
        if actor is None or actor == "member":
            raise Forbidden("only the owner or an admin may remove someone else")
        if role is None:
            raise NotFound(f"user {target} is not a member of room {rid}")
        if not may_remove(actor, role):
            raise Forbidden(f"an {actor} may not remove the room's {role}")
        if await store.remove_member(rid, target, actor=me):
            # Every instance closes the user's sockets if the room is members-only (4403).
            bus.publish_nowait(RoomChange(rid, "member_removed", target, "removed"))
        return NO_CONTENT

    @bp.put("/api/v1/rooms/<int:room_id>/members/<int:user_id>/role")
    async def set_role(room_id: int, user_id: int) -> dict[str, Any]:
        me, rid, target = user(), room_id_param(room_id), user_id_param(user_id)
        body = await json_object()
        await owned_room(store, rid, me)
        role = next((r for r in ASSIGNABLE_ROLES if body.get("role") == r), None)
        if role is None:
            raise ValidationFailed('role must be "admin" or "member" (to hand over the room, '
                                   "POST /rooms/{id}/owner)")  # fmt: skip
        if target == me:
            raise ValidationFailed("the owner's role changes only by handing the room over")
        member = await store.set_role(rid, target, role, actor=me)
        bus.publish_nowait(RoomChange(rid, "role_changed", target, role))
        return member.to_json()

    @bp.post("/api/v1/rooms/<int:room_id>/owner")
    async def transfer(room_id: int) -> dict[str, Any]:
        me, rid = user(), room_id_param(room_id)
        body = await json_object()
        new_owner = user_id_field(body)
        await owned_room(store, rid, me)
        if new_owner == me:
            return await as_seen_by(rid, me)
        await store.transfer_owner(rid, new_owner, actor=me)
        bus.publish_nowait(RoomChange(rid, "role_changed", new_owner, "owner"))
        bus.publish_nowait(RoomChange(rid, "role_changed", me, "admin"))
        bus.publish_nowait(RoomChange(rid, "room_updated"))
        return await as_seen_by(rid, me)

    return bp


def _room_kind(raw: str | None) -> RoomKind | None:
    if raw == "room":
        return "room"
    if raw == "dm":
        return "dm"
    return None
