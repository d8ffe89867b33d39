"""Who may see, join and change a room."""

from __future__ import annotations

from chatd.errors import Forbidden, NotFound
from chatd.model import Room, RoomId, UserId
from chatd.store import Store


async def room_or_404(store: Store, room_id: RoomId) -> Room:
    room = await store.room(room_id)
    if room is None:
        raise NotFound(f"room {room_id} does not exist")
    return room


async def readable_room(store: Store, room_id: RoomId, user_id: UserId) -> Room:
    """A public room, or a private one the user is a member of (owners are members)."""
    room = await room_or_404(store, room_id)
    if room.visibility == "private" and not await store.is_member(room_id, user_id):
        raise Forbidden(f"room {room_id} is private and you are not a member")
    return room


async def owned_room(store: Store, room_id: RoomId, user_id: UserId) -> Room:
    room = await room_or_404(store, room_id)
    if room.owner_id != user_id:
        raise Forbidden(f"only the owner of room {room_id} may do that")
    return room
