"""The hub: owns the room tasks and routes committed messages to them."""

from __future__ import annotations

import logging

import trio

from chatd.bus.base import Bus
from chatd.hub.frames import presence_frame
from chatd.hub.member import ROOM_GONE, Member
from chatd.hub.presence import Presence
from chatd.hub.room import Room
from chatd.metrics import Metrics
from chatd.model import Message, RoomId, Signal, UserId
from chatd.store import Store

log = logging.getLogger(__name__)


class Hub:
    def __init__(self, store: Store, metrics: Metrics, room_inbox_size: int) -> None:
        self._store = store
        self._metrics = metrics
        self._room_inbox_size = room_inbox_size
        self._rooms: dict[RoomId, Room] = {}
        self._nursery: trio.Nursery | None = None
        self._bus: Bus | None = None
        self.presence: Presence | None = None
        self._emptied = trio.Event()

    def attach(self, bus: Bus, presence: Presence) -> None:
        self._bus = bus
        self.presence = presence

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the room tasks until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def dispatch_nowait(self, event: Message | Signal) -> None:
        """The bus's sink: hand a committed message or a signal to its room, if active here."""
        room = self._rooms.get(event.room_id)
        if room is not None:
            room.offer(event)

    def presence_changed(self, room_id: RoomId, user_id: UserId, status: str) -> None:
        """The presence tracker's verdict: tell this room's local members."""
        room = self._rooms.get(room_id)
        if room is not None:
            frame = presence_frame(user_id, status)
            for member in room.members:
                member.offer(frame)

    def announce_presence(self, room_id: RoomId) -> None:
        """Ask every instance to look at this room's presence again (never waits)."""
        self.signal_nowait(Signal(room_id, "presence"))

    def typing_allowed(self, member: Member, now: float, interval_s: float) -> bool:
        room = self._rooms.get(member.room_id)
        return room is not None and room.typing_allowed(member.user_id, now, interval_s)

    def resync_all(self) -> None:
        """Events may have been missed (the bus reconnected): every room refills."""
        for room_id in list(self._rooms):
            self.dispatch_nowait(Signal(room_id, "resync"))

    def signal_nowait(self, signal: Signal) -> None:
        assert self._bus is not None
        self._bus.publish_nowait(signal)

    async def join(self, member: Member) -> int:
        """Make the member one of its room's until leave(): it receives every message
        after the id returned (the room's last delivered one when the member joined)."""
        room = await self._activate(member.room_id)
        room.members.add(member)
        assert self.presence is not None
        self.presence.joined(member.room_id, member.user_id)
        return room.last_id

    def leave(self, member: Member) -> None:
        room = self._rooms.get(member.room_id)
        if room is None or member not in room.members:
            return
        room.members.discard(member)
        assert self.presence is not None
        self.presence.left(member.room_id, member.user_id)
        if not room.members:
            self._deactivate(room)

    def close_room(self, room_id: RoomId, why: str) -> None:
        """The room is gone: end every local connection to it."""
        room = self._rooms.get(room_id)
        if room is not None:
            for member in room.members:
                member.kick(ROOM_GONE, why)

    def last_id(self, room_id: RoomId) -> int | None:
        """The newest id delivered in this room here, if it is active here."""
        room = self._rooms.get(room_id)
        return None if room is None or not room.ready.is_set() else room.last_id

    def all_members(self) -> list[Member]:
        return [member for room in self._rooms.values() for member in room.members]

    async def wait_empty(self) -> None:
        """Until no connection is a member of any room here."""
        while self._rooms:
            self._emptied = trio.Event()
            await self._emptied.wait()

    def members_of(self, room_id: RoomId) -> list[Member]:
        room = self._rooms.get(room_id)
        return [] if room is None else list(room.members)

    async def _activate(self, room_id: RoomId) -> Room:
        assert self._nursery is not None and self._bus is not None, "hub is not running"
        while True:
            room = self._rooms.get(room_id)
            if room is not None:
                await room.ready.wait()
                if room.failed:
                    continue  # its starter gave up; try to start it ourselves
                return room
            room = self._rooms[room_id] = Room(
                room_id,
                self._store,
                self._metrics,
                self._room_inbox_size,
                on_presence=self._presence_hint,
            )
            try:
                await self._bus.subscribe(room_id)
                await self._nursery.start(room.run)
            except BaseException:
                room.failed = True
                self._deactivate(room)
                raise
            finally:
                room.ready.set()
            self._metrics.rooms_active.inc()
            return room

    def _presence_hint(self, room_id: RoomId) -> None:
        if self.presence is not None:
            self.presence.hint(room_id)

    def _deactivate(self, room: Room) -> None:
        del self._rooms[room.room_id]
        assert self._bus is not None
        self._bus.unsubscribe(room.room_id)
        room.cancel_scope.cancel()
        if not room.failed:
            self._metrics.rooms_active.dec()
        if not self._rooms:
            self._emptied.set()
