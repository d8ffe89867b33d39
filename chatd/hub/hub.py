"""The hub: owns the room tasks and routes what the bus carries to them."""

from __future__ import annotations

import logging

import trio

from chatd.bus.base import Bus
from chatd.closecodes import DISCONNECTED_BY_ADMIN, ROOM_CLOSED, ROOM_GONE, SESSION_ENDED
from chatd.hub.frames import Outgoing
from chatd.hub.member import Member
from chatd.hub.presence import Presence
from chatd.hub.room import Room
from chatd.metrics import Metrics
from chatd.model import BusEvent, PresenceChange, RoomId, Signal, UserEvent, UserId
from chatd.store import Store

log = logging.getLogger(__name__)


class Hub:
    """Rooms with local members, each a supervised task fed by the bus.

    The bus and presence tracker are given whole at construction and run by
    the service beside the hub; the hub is their sink (dispatch_nowait,
    resync_all, presence_changed), handed over when each of them starts.
    """

    def __init__(
        self,
        store: Store,
        bus: Bus,
        presence: Presence,
        metrics: Metrics,
        room_inbox_size: int,
    ) -> None:
        self._store = store
        self._bus = bus
        self._presence = presence
        self._metrics = metrics
        self._room_inbox_size = room_inbox_size
        self._rooms: dict[RoomId, Room] = {}
        # Each user's local connections, for what concerns a user wherever they are (user
        # events, ended sessions): one entry per connected user, kept up in join and leave,
        # rather than a scan of every connection per event (notifications are frequent).
        self._by_user: dict[UserId, list[Member]] = {}
        self._started = trio.Event()
        self._nursery: trio.Nursery | None = None  # the room tasks' owner, while running
        self._emptied = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the room tasks until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    # -- sinks: the bus and the presence tracker call these; they never wait --

    def dispatch_nowait(self, event: BusEvent) -> None:
        """A committed message or room event, for its room if it is active here."""
        room = self._rooms.get(event.room_id)
        if room is not None:
            room.offer(event)

    def resync_all(self) -> None:
        """Events may have been missed (the bus reconnected): every room catches up."""
        for room_id, room in list(self._rooms.items()):
            room.offer(Signal(room_id, "resync"))

    def presence_changed(self, room_id: RoomId, user_id: UserId, status: str) -> None:
        """The presence tracker's verdict, for this room's local members via its task."""
        room = self._rooms.get(room_id)
        if room is not None:
            room.offer(
                PresenceChange(room_id, user_id, "online" if status == "online" else "offline")
            )

    def end_sessions(self, user_id: UserId, before: int) -> None:
        """The user's tokens were cut off (a password change, an administrator): close
        their sockets signed in before it."""
        for member in self._by_user.get(user_id, ()):
            if member.signed_in_at < before:
                member.kick(SESSION_ENDED, "signed out: your sessions were ended")

    def user_event_nowait(self, event: UserEvent) -> None:
        """A user event from the bus, for the user's local sockets, whatever their room."""
        members = self._by_user.get(event.user_id)
        if not members:
            return
        if event.kind == "disconnect":
            why = event.detail or "disconnected by an administrator"
            for member in list(members):
                member.kick(DISCONNECTED_BY_ADMIN, why)
        elif event.detail is not None:  # a notification: its frame, made once for all
            frame = Outgoing(event.detail.encode())
            for member in list(members):
                member.offer(frame)

    # -- connections ---------------------------------------------------------

    def signal_nowait(self, signal: Signal) -> None:
        self._bus.publish_nowait(signal)

    def typing_allowed(self, member: Member, now: float, interval_s: float) -> bool:
        room = self._rooms.get(member.room_id)
        return room is not None and room.typing_allowed(member.user_id, now, interval_s)

    async def join(self, member: Member) -> int:
        """Make the member one of its room's until leave(): it receives every message
        after the id returned (the room's last delivered one when the member joined)."""
        room = await self._activate(member.room_id)
        room.members.add(member)
        mine = self._by_user.get(member.user_id)
        if mine is None:
            self._by_user[member.user_id] = [member]
        else:
            mine.append(member)
        self._presence.joined(member.room_id, member.user_id)
        if room.gone:  # deleted after the joiner's access check passed
            member.kick(ROOM_GONE, "room deleted")
        elif room.closed:  # closed after it
            member.kick(ROOM_CLOSED, "room closed by an administrator")
        return room.last_id

    def leave(self, member: Member) -> None:
        room = self._rooms.get(member.room_id)
        if room is None or member not in room.members:
            return
        room.members.discard(member)
        mine = self._by_user.get(member.user_id)
        if mine is not None:
            mine.remove(member)
            if not mine:
                del self._by_user[member.user_id]
        self._presence.left(member.room_id, member.user_id)
        if not room.members:
            self._deactivate(room)

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

    # -- room tasks ------------------------------------------------------------

    async def _activate(self, room_id: RoomId) -> Room:
        if self._nursery is None:
            raise RuntimeError("the hub is not running")
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
                on_presence=self._presence.hint,
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

    def _deactivate(self, room: Room) -> None:
        del self._rooms[room.room_id]
        self._bus.unsubscribe(room.room_id)
        room.cancel_scope.cancel()
        if not room.failed:
            self._metrics.rooms_active.dec()
        if not self._rooms:
            self._emptied.set()
