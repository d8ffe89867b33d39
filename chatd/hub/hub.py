"""The hub: owns the room tasks and routes committed messages to them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from chatd.bus.base import Bus
from chatd.hub.member import ROOM_GONE, Member
from chatd.hub.room import Room
from chatd.metrics import Metrics
from chatd.model import Message, RoomId
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

    def attach(self, bus: Bus) -> None:
        self._bus = bus

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the room tasks until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def dispatch_nowait(self, message: Message) -> None:
        """The bus's sink: hand a committed message to its room, if active here."""
        room = self._rooms.get(message.room_id)
        if room is not None:
            room.offer(message)

    @asynccontextmanager
    async def joined(self, member: Member) -> AsyncIterator[int]:
        """Member of its room for the duration: it receives every message after the
        id this yields (the room's last delivered one when the member joined)."""
        room = await self._activate(member.room_id)
        room.members.add(member)
        try:
            yield room.last_id
        finally:
            room.members.discard(member)
            if not room.members and self._rooms.get(room.room_id) is room:
                self._deactivate(room)

    def close_room(self, room_id: RoomId, why: str) -> None:
        """The room is gone: end every local connection to it."""
        room = self._rooms.get(room_id)
        if room is not None:
            for member in room.members:
                member.kick(ROOM_GONE, why)

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
                room_id, self._store, self._metrics, self._room_inbox_size
            )
            self._bus.subscribe(room_id)
            try:
                await self._nursery.start(room.run)
            except BaseException:
                room.failed = True
                self._deactivate(room)
                raise
            finally:
                room.ready.set()
            self._metrics.rooms_active.inc()
            return room

    def _deactivate(self, room: Room) -> None:
        del self._rooms[room.room_id]
        assert self._bus is not None
        self._bus.unsubscribe(room.room_id)
        room.cancel_scope.cancel()
        if not room.failed:
            self._metrics.rooms_active.dec()
