"""A room task: delivers its messages in id order to every local member.

Messages arrive from the bus. Ids are the room's contiguous sequence, so a
message more than one past the last delivered reveals a gap, which the
room fills from the store before going on: members see every message,
in order, once — whichever instance committed it, and whatever order the
bus delivered it in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio

from chatd.errors import StoreUnavailable
from chatd.hub.frames import message_frame, typing_frame
from chatd.hub.member import Member
from chatd.metrics import Metrics
from chatd.model import Message, RoomId, Signal, UserId
from chatd.store import Store

log = logging.getLogger(__name__)

GAP_PAGE = 500
RESYNC = 1011  # the room lost track; members reconnect with ?since=


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
        self.failed = False
        self._store = store
        self._metrics = metrics
        self._on_presence = on_presence
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[Message | Signal](inbox_size)
        self._last_id = 0
        # Set when an event could not be queued (the inbox was full), or a
        # resync was asked for: refill from the store once the inbox drains.
        self._refill_needed = False
        self._last_typing: dict[UserId, float] = {}

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

    def offer(self, event: Message | Signal) -> None:
        """Called by the bus; never waits. An overflow is remembered and refilled."""
        try:
            self._inbox_send.send_nowait(event)
        except trio.WouldBlock:
            if isinstance(event, Message) or event.kind == "resync":
                self._refill_needed = True
            # A dropped typing or presence hint is harmless: both are advisory.

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.cancel_scope:
            # Subscribed before this read, so nothing committed after it is missed.
            self._last_id = await self._store.last_message_id(self.room_id)
            task_status.started()
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
                if self._refill_needed:
                    self._refill_needed = False
                    await self._refill()

    async def _handle(self, event: Message | Signal) -> None:
        if isinstance(event, Message):
            await self._deliver_in_order(event)
        elif event.kind == "typing":
            self._broadcast_typing(event)
        elif event.kind == "presence":
            self._on_presence(self.room_id)
        else:
            self._refill_needed = True

    async def _deliver_in_order(self, message: Message) -> None:
        if message.id <= self._last_id:
            return  # already delivered (a gap fill got there first)
        if message.id > self._last_id + 1:
            await self._fill_gap(message.id - 1)
        self._broadcast(message)

    async def _refill(self) -> None:
        try:
            newest = await self._store.last_message_id(self.room_id)
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
            member.kick(RESYNC, "temporary failure")

    def _broadcast(self, message: Message) -> None:
        frame = message_frame(message)  # encoded once for every member
        delivered = 0
        for member in self.members:
            delivered += member.offer(frame)
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
