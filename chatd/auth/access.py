"""Who may see, join and change a room: the rules of kinds and roles, in one place.

Public rooms are open to everyone signed in; private and invite rooms and DMs
to their members. The owner may do anything to a room; admins manage members
and messages; a DM has no owner and nobody manages it.
"""

from __future__ import annotations

from chatd.errors import Forbidden, NotFound
from chatd.model import Role, Room, RoomId, UserId
from chatd.store import Store

MANAGERS: frozenset[Role] = frozenset({"owner", "admin"})


async def room_or_404(store: Store, room_id: RoomId) -> Room:
    room = await store.room(room_id)
    if room is None:
        raise NotFound(f"room {room_id} does not exist")
    return room


async def readable_room(store: Store, room_id: RoomId, user_id: UserId) -> Room:
    """A public room, or a members-only one the user is a member of."""
    room = await room_or_404(store, room_id)
    if room.members_only and not await store.is_member(room_id, user_id):
        raise Forbidden(f"room {room_id} is for its members only and you are not one")
    return room


async def member_room(store: Store, room_id: RoomId, user_id: UserId) -> tuple[Room, Role]:
    """A room the user may read and is a member of, with their role."""
    room = await readable_room(store, room_id, user_id)
    role = await store.role_of(room_id, user_id)
    if role is None:
        raise Forbidden(f"join room {room_id} first")
    return room, role


async def owned_room(store: Store, room_id: RoomId, user_id: UserId) -> Room:
    room = await room_or_404(store, room_id)
    if room.kind == "dm":
        raise Forbidden("a DM has no owner: nobody may rename, change or delete it")
    if room.owner_id != user_id:
        raise Forbidden(f"only the owner of room {room_id} may do that")
    return room


async def managed_room(store: Store, room_id: RoomId, user_id: UserId) -> tuple[Room, Role]:
    """A room (not a DM) the user owns or is an admin of, with their role."""
    room = await room_or_404(store, room_id)
    if room.kind == "dm":
        raise Forbidden("nobody manages the members of a DM")
    role = await store.role_of(room_id, user_id)
    if role not in MANAGERS:
        raise Forbidden(f"only the owner or an admin of room {room_id} may do that")
    assert role is not None
    return room, role


def may_remove(actor: Role, target: Role) -> bool:
    """The owner removes anyone but themself; admins remove plain members."""
    if target == "owner":
        return False
    return actor == "owner" or (actor == "admin" and target == "member")
