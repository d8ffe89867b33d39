"""/api/v1/users, /dms and invitations: finding people and talking to them.

A DM is created on first use and found after that; the database's unique key
on its set of members makes it one room however many open it at once. An
invitation is a row the invitee spends by accepting (docs/protocol.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, request

from chatd.auth.access import MANAGERS, readable_room, room_or_404
from chatd.errors import Forbidden, NotFound, ValidationFailed
from chatd.model import RoomChange, RoomId, UserId
from chatd.service import Service
from chatd.transport.http import MAX_DB_ID, authenticate, json_object, query_int, room_id_param
from chatd.transport.rest_rooms import NO_CONTENT, room_seen_by, user_id_field, user_id_param

MAX_HANDLE_QUERY = 64
USERS_PAGE = 20


def people_routes(service: Service) -> Blueprint:
    bp = Blueprint("people", __name__)
    store, bus, settings = service.store, service.bus, service.settings

    def user() -> UserId:
        return authenticate(settings.jwt_secret, request.headers, request.args)

    async def as_seen_by(room_id: RoomId, me: UserId) -> dict[str, Any]:
        return await room_seen_by(store, room_id, me)

    @bp.get("/api/v1/users")
    async def find_users() -> dict[str, Any]:
        user()
        prefix = request.args.get("handle", "")
        if not prefix or len(prefix) > MAX_HANDLE_QUERY or "@" in prefix:
            raise ValidationFailed(
                f"handle must be 1 to {MAX_HANDLE_QUERY} characters without an @"
            )
        if any(not ch.isprintable() for ch in prefix):
            raise ValidationFailed("handle must be printable text")
        limit = query_int(request.args, "limit", default=USERS_PAGE, low=1, high=USERS_PAGE)
        assert limit is not None
        found = await store.users_by_handle(prefix, limit)
        return {"items": [{"id": u.id, "handle": u.handle} for u in found]}

    # -- direct messages -----------------------------------------------------------

    @bp.post("/api/v1/dms")
    async def open_dm() -> tuple[dict[str, Any], int]:
        me = user()
        body = await json_object()
        others = _dm_partners(body, settings.group_dm_max)
        if me in others:
            raise ValidationFailed("a DM is with other people: leave yourself out")
        missing = set(others) - await store.existing_users(others)
        if missing:
            raise NotFound(f"no such user: {', '.join(map(str, sorted(missing)))}")
        room, created, rejoined = await store.open_dm([me, *others], datetime.now(UTC), actor=me)
        for person in rejoined:  # whoever had left this group DM is back in it
            bus.publish_nowait(RoomChange(room.id, "member_added", person, "member"))
        return await as_seen_by(room.id, me), 201 if created else 200

    # -- invitations ---------------------------------------------------------------

    @bp.post("/api/v1/rooms/<int:room_id>/invites")
    async def invite(room_id: int) -> tuple[dict[str, Any], int]:
        me, rid = user(), room_id_param(room_id)
        body = await json_object()
        invitee = user_id_field(body)
        room = await readable_room(store, rid, me)
        if room.kind != "room" or room.visibility != "invite":
            raise ValidationFailed(
                "only invite rooms take invitations (public: anyone joins; "
                "private: the owner or an admin adds members)"
            )
        if await store.user_by_id(invitee) is None:
            raise NotFound(f"user {invitee} does not exist")
        found = await store.invite(rid, invitee, me, datetime.now(UTC))
        return found.to_json(), 201

    @bp.get("/api/v1/rooms/<int:room_id>/invites")
    async def room_invites(room_id: int) -> dict[str, Any]:
        me, rid = user(), room_id_param(room_id)
        room = await readable_room(store, rid, me)
        if not room.members_only:
            return {"items": []}
        return {"items": [i.to_json() for i in await store.room_invites(rid)]}

    @bp.delete("/api/v1/rooms/<int:room_id>/invites/<int:user_id>")
    async def withdraw(room_id: int, user_id: int) -> tuple[str, int]:
        me, rid, invitee = user(), room_id_param(room_id), user_id_param(user_id)
        await room_or_404(store, rid)
        found = await store.invite_of(rid, invitee)
        if found is None:
            raise NotFound(f"user {invitee} has no invitation to room {rid}")
        if found.invited_by != me and await store.role_of(rid, me) not in MANAGERS:
            raise Forbidden("only who sent an invitation, an admin or the owner may withdraw it")
        await store.withdraw_invite(rid, invitee)
        return NO_CONTENT

    @bp.get("/api/v1/users/me/invites")
    async def my_invites() -> dict[str, Any]:
        return {"items": [i.to_json() for i in await store.user_invites(user())]}

    @bp.post("/api/v1/users/me/invites/<int:room_id>/accept")
    async def accept(room_id: int) -> dict[str, Any]:
        me, rid = user(), room_id_param(room_id)
        if not await store.accept_invite(rid, me, datetime.now(UTC)):
            raise NotFound(f"you have no invitation to room {rid}")
        bus.publish_nowait(RoomChange(rid, "member_added", me, "member"))
        return await as_seen_by(rid, me)

    @bp.delete("/api/v1/users/me/invites/<int:room_id>")
    async def decline(room_id: int) -> tuple[str, int]:
        me, rid = user(), room_id_param(room_id)
        if not await store.withdraw_invite(rid, me):
            raise NotFound(f"you have no invitation to room {rid}")
        return NO_CONTENT

    return bp


def _dm_partners(body: dict[str, Any], group_max: int) -> list[UserId]:
    """Whom the caller opens a DM with: {user_id} or {user_ids: [...]}, without repeats."""
    if ("user_id" in body) == ("user_ids" in body):
        raise ValidationFailed("send user_id (a DM) or user_ids (a group DM), not both")
    if "user_id" in body:
        return [user_id_field(body)]
    raw = body["user_ids"]
    if not isinstance(raw, list) or not raw:
        raise ValidationFailed("user_ids must be a non-empty list of user ids")
    ids: list[UserId] = []
    for value in raw:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DB_ID:
            raise ValidationFailed("user_ids must hold user ids (positive integers)")
        if UserId(value) not in ids:
            ids.append(UserId(value))
        if len(ids) > group_max:
            raise ValidationFailed(f"a group DM has at most {group_max} people besides you")
    return ids
