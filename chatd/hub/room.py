"""A room task: applies its room's events, in order, to every local member.

Events arrive from the bus (messages, room changes, typing, presence hints)
and from this instance's presence tracker (who came and went). Message ids
are the room's contiguous sequence, so a message more than one past the
last delivered reveals a gap, which the room fills from the store before
going on: members see every message, in order, once — whichever instance
committed it, and whatever order the bus delivered it in.

The task is a failure boundary: an error nobody foresaw closes this room's
sockets with 1011 (their clients resume with ?since=), is logged and
counted, and the room starts over. No room can take the instance down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio

from chatd.closecodes import REMOVED_FROM_ROOM, ROOM_CLOSED, ROOM_FAILED, ROOM_GONE
from chatd.errors import NotFound, StoreUnavailable
from chatd.hub.frames import (
    Outgoing,
    member_frame,
    message_frame,
    presence_frame,
    purged_frame,
    read_frame,
    room_frame,
    typing_frame,
)
from chatd.hub.member import Member
from chatd.metrics import Metrics
from chatd.model import (
    BusEvent,
    Message,
    PresenceChange,
    RoomChange,
    RoomId,
    Signal,
    TracedMessage,
    UserId,
)
from chatd.store import Store
from chatd.tracing import TRACE, untraced
from chatd.tracing.messages import record_delivery

log = logging.getLogger(__name__)

GAP_PAGE = 500
# After a failure, the room starts over after this long, doubling while it keeps failing.
RESTART_FIRST_S = 0.1
RESTART_MAX_S = 10.0

RoomEvent = BusEvent | PresenceChange


class Room:
    def __init__(
        self,
        room_id: RoomId,
        store: Store,
        metrics: Metrics,
        inbox_size: int,
        on_presence: Callable[[RoomId], None] = lambda room_id: None,
    ) -> None:
        self.room_id = room_id
        self.members: set[Member] = set()
        self.cancel_scope = trio.CancelScope()
        self.ready = trio.Event()
        self.failed = False  # it could not start: whoever waits on `ready` starts another
        self._store = store
        self._metrics = metrics
        self._on_presence = on_presence
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[RoomEvent](inbox_size)
        self._last_id = 0
        # Set when an event could not be queued (the inbox was full), or a
        # resync was asked for: refill from the store once the inbox drains.
        self._refill_needed = False
        # Set when a room change could not be queued, or after a resync: who may
        # stay is read from the store once the inbox drains.
        self._recheck_needed = False
        self._gone = False  # deleted: every member was closed with 4404
        self._closed = False  # closed by an administrator: every member closed with 4423
        self._last_typing: dict[UserId, float] = {}

    @property
    def gone(self) -> bool:
        """The room was deleted: its members are closed, and so is anyone who joins late."""
        return self._gone

    @property
    def closed(self) -> bool:
        """An administrator closed the room: anyone who joins late is closed too."""
        return self._closed

    @property
    def last_id(self) -> int:
        """Every message up to this id has been offered to the members of the time."""
        return self._last_id

    def typing_allowed(self, user_id: UserId, now: float, interval_s: float) -> bool:
        """At most one typing signal per user per interval: the rest are dropped."""
        last = self._last_typing.get(user_id)
        if last is not None and now - last < interval_s:
            return False
        self._last_typing[user_id] = now
        if len(self._last_typing) > 4 * len(self.members) + 64:  # forget who left
            here = {member.user_id for member in self.members}
            self._last_typing = {u: t for u, t in self._last_typing.items() if u in here}
        return True

    def offer(self, event: RoomEvent) -> None:
        """Called by the hub; never waits. What must not be lost is remembered and redone."""
        try:
            self._inbox_send.send_nowait(event)
        except trio.WouldBlock:
            if isinstance(event, Message):
                self._refill_needed = True
            elif isinstance(event, RoomChange):
                self._recheck_needed = True
            elif isinstance(event, Signal) and event.kind == "resync":
                self._refill_needed = self._recheck_needed = True
            # A dropped typing or presence event is harmless: both are advisory.

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.cancel_scope:
            # Subscribed before this read, so nothing committed after it is missed.
            # A failure here is the joiner's to see (the room may not exist).
            self._last_id = await self._store.last_message_id(self.room_id)
            task_status.started()
            untraced()  # the joiner's handshake started this task; it ends long before it
            restart_s = RESTART_FIRST_S
            while True:
                try:
                    await self._serve()
                except Exception as exc:
                    self._failed(exc)
                    await trio.sleep(restart_s)
                    restart_s = min(RESTART_MAX_S, restart_s * 2)
                    if await self._start_over():
                        restart_s = RESTART_FIRST_S

    async def _serve(self) -> None:
        async for event in self._inbox_recv:
            await self._handle(event)
            # Whatever else is queued goes out before the socket writers run
            # (no checkpoint in between), so each writes it all in one send.
            while True:
                try:
                    event = self._inbox_recv.receive_nowait()
                except trio.WouldBlock:
                    break
                await self._handle(event)
            if self._recheck_needed:
                self._recheck_needed = False
                await self._recheck_access()
            if self._refill_needed:
                self._refill_needed = False
                await self._refill()

    def _failed(self, exc: Exception) -> None:
        log.error(
            "room %s: unexpected error; closing its %d local connections (1011) and restarting it",
            self.room_id,
            len(self.members),
            exc_info=exc,
        )
        self._metrics.room_failures.inc()
        for member in self.members:
            member.kick(ROOM_FAILED, "temporary failure")

    async def _start_over(self) -> bool:
        """Read where the room stands again; False if that failed too (retried later)."""
        try:
            self._last_id = await self._store.last_message_id(self.room_id)
        except NotFound:
            self._room_deleted()
            return True
        except Exception as exc:
            log.warning("room %s: cannot restart yet: %s", self.room_id, exc)
            return False
        self._refill_needed = self._recheck_needed = False
        return True

    async def _handle(self, event: RoomEvent) -> None:
        if isinstance(event, Message):
            await self._deliver_in_order(event)
        elif isinstance(event, RoomChange):
            await self._apply(event)
        elif isinstance(event, PresenceChange):
            self._send_all(presence_frame(event.user_id, event.status))
        elif event.kind == "typing":
            self._broadcast_typing(event)
        elif event.kind == "presence":
            self._on_presence(self.room_id)
        else:  # resync: anything may have been missed, messages and changes alike
            self._refill_needed = self._recheck_needed = True

    # -- room changes ----------------------------------------------------------

    async def _apply(self, change: RoomChange) -> None:
        kind, user_id = change.kind, change.user_id
        if kind == "deleted":
            self._room_deleted()  # final: a deleted room's id is never used again
        elif kind == "closed":
            self._room_closed()
        elif kind == "reopened":
            self._closed = False
        elif kind == "purged" and isinstance(change.detail, int):
            self._send_all(purged_frame(self.room_id, change.detail))
        elif kind == "read" and user_id is not None and isinstance(change.detail, int):
            self._send_all(read_frame(self.room_id, user_id, change.detail))
        elif kind in ("member_added", "role_changed") and user_id is not None:
            change_name = "joined" if kind == "member_added" else "role_changed"
            role = change.detail if isinstance(change.detail, str) else None
            self._send_all(member_frame(self.room_id, user_id, change_name, role))
        elif kind == "member_removed" and user_id is not None:
            how = change.detail if change.detail in ("left", "removed") else "removed"
            self._send_all(member_frame(self.room_id, user_id, str(how), None))
            if any(member.user_id == user_id for member in self.members):
                await self._recheck_access({user_id})
        else:  # visibility_changed, room_updated: what it is now, and who may stay
            await self._recheck_access(None, announce=True)

    async def _recheck_access(
        self, users: set[UserId] | None = None, *, announce: bool = False
    ) -> None:
        """Close the sockets of whoever may no longer read this room, by the store:
        of `users`, or of every local member. `announce`: send everyone the room as
        it now is (its name, visibility or owner changed)."""
        if self._gone or not self.members:
            return
        try:
            room = await self._store.room(self.room_id)
            if room is None:
                self._room_deleted()
                return
            if room.closed_at is not None:  # a closing this instance did not hear of
                self._room_closed()
                return
            self._closed = False
            if announce:
                self._send_all(room_frame(room))
            if not room.members_only:
                return
            allowed = set(await self._store.members(self.room_id))
        except StoreUnavailable:
            self._recheck_needed = True  # the next event tries again
            return
        here = {m.user_id for m in self.members} if users is None else users
        self._close_outsiders(here - allowed)

    def _send_all(self, frame: Outgoing) -> None:
        for member in self.members:
            member.offer(frame)

    def _close_outsiders(self, users: set[UserId]) -> None:
        for member in self.members:
            if member.user_id in users:
                member.kick(REMOVED_FROM_ROOM, "removed from the room")

    def _room_closed(self) -> None:
        if not self._closed:
            log.info(
                "room %s: closed by an administrator; closing %d local connections",
                self.room_id,
                len(self.members),
            )
        self._closed = True
        for member in self.members:
            member.kick(ROOM_CLOSED, "room closed by an administrator")

    def _room_deleted(self) -> None:
        if not self._gone:
            log.info(
                "room %s: deleted; closing %d local connections", self.room_id, len(self.members)
            )
        self._gone = True
        for member in self.members:
            member.kick(ROOM_GONE, "room deleted")

    # -- messages ----------------------------------------------------------------

    async def _deliver_in_order(self, message: Message) -> None:
        if message.id <= self._last_id:
            return  # already delivered (a gap fill got there first)
        if message.id > self._last_id + 1:
            await self._fill_gap(message.id - 1)
        self._broadcast(message)

    async def _refill(self) -> None:
        try:
            newest = await self._store.last_message_id(self.room_id)
        except NotFound:
            self._room_deleted()
            return
        except StoreUnavailable:
            self._resync_members()
            return
        await self._fill_gap(newest)

    async def _fill_gap(self, up_to: int) -> None:
        try:
            while self._last_id < up_to:
                page = await self._store.messages_after(
                    self.room_id, self._last_id, min(GAP_PAGE, up_to - self._last_id)
                )
                if not page:
                    break
                for message in page:
                    self._broadcast(message)
        except StoreUnavailable:
            self._resync_members()
        self._last_id = max(self._last_id, up_to)

    def _resync_members(self) -> None:
        # Members cannot be given the missing messages now: rather than skip
        # them silently, close every connection so each resumes with ?since=.
        log.warning("room %s: cannot refill from the store; resyncing members", self.room_id)
        for member in self.members:
            member.kick(ROOM_FAILED, "temporary failure")

    def _broadcast(self, message: Message) -> None:
        traced_from = time.time_ns() if TRACE.on and isinstance(message, TracedMessage) else 0
        frame = message_frame(message)  # encoded once for every member
        delivered = 0
        for member in self.members:
            delivered += member.offer(frame)
        if traced_from:
            record_delivery(message, delivered, traced_from)
        self._metrics.messages_delivered.inc(delivered)
        # created_at is stamped just before the commit; wall clock, as other
        # instances commit too (their clock skew shows here).
        self._metrics.fanout_latency.observe(max(0.0, time.time() - message.created_at.timestamp()))
        self._last_id = message.id

    def _broadcast_typing(self, signal: Signal) -> None:
        if signal.user_id is None:
            return
        frame = typing_frame(signal.user_id)
        for member in self.members:
            if member.user_id != signal.user_id:
                member.offer(frame)
