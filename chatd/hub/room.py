"""A room task: delivers its messages in id order to every local member.

Messages arrive from the bus. Ids are the room's contiguous sequence, so a
message more than one past the last delivered reveals a gap, which the
room fills from the store before going on: members see every message,
in order, once.
"""

from __future__ import annotations

import logging

import trio

from chatd.errors import StoreUnavailable
from chatd.hub.frames import message_frame
from chatd.hub.member import Member
from chatd.metrics import Metrics
from chatd.model import Message, RoomId
from chatd.store import Store

log = logging.getLogger(__name__)

GAP_PAGE = 500
RESYNC = 1011  # the room lost track; members reconnect with ?since=


class Room:
    def __init__(self, room_id: RoomId, store: Store, metrics: Metrics, inbox_size: int) -> None:
        self.room_id = room_id
        self.members: set[Member] = set()
        self.cancel_scope = trio.CancelScope()
        self.ready = trio.Event()
        self.failed = False
        self._store = store
        self._metrics = metrics
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[Message](inbox_size)
        self._last_id = 0
        # Highest id that could not be queued: the inbox was full. Filled from the store.
        self._dropped_up_to = 0

    @property
    def last_id(self) -> int:
        """Every message up to this id has been offered to the members of the time."""
        return self._last_id

    def offer(self, message: Message) -> None:
        """Called by the bus; never waits. An overflow is remembered and filled later."""
        try:
            self._inbox_send.send_nowait(message)
        except trio.WouldBlock:
            self._dropped_up_to = max(self._dropped_up_to, message.id)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.cancel_scope:
            # Subscribed before this read, so nothing committed after it is missed.
            self._last_id = await self._store.last_message_id(self.room_id)
            task_status.started()
            async for message in self._inbox_recv:
                await self._deliver_in_order(message)
                if self._dropped_up_to > self._last_id and self._inbox_is_empty():
                    await self._fill_gap(self._dropped_up_to)

    def _inbox_is_empty(self) -> bool:
        return self._inbox_recv.statistics().current_buffer_used == 0

    async def _deliver_in_order(self, message: Message) -> None:
        if message.id <= self._last_id:
            return  # already delivered (a gap fill got there first)
        if message.id > self._last_id + 1:
            await self._fill_gap(message.id - 1)
        self._broadcast(message)

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
            # Members cannot be given the missing messages now: rather than skip
            # them silently, close every connection so each resumes with ?since=.
            log.warning(
                "room %s: gap up to %s not fillable; resyncing members", self.room_id, up_to
            )
            for member in self.members:
                member.kick(RESYNC, "temporary failure")
        self._last_id = max(self._last_id, up_to)

    def _broadcast(self, message: Message) -> None:
        frame = message_frame(message)  # encoded once for every member
        delivered = 0
        for member in self.members:
            delivered += member.offer(frame)
        self._metrics.messages_delivered.inc(delivered)
        self._last_id = message.id
