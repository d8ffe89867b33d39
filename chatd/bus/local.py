"""The in-process bus: one instance, so publishing is delivering."""

from __future__ import annotations

import trio

from chatd.bus.base import Sink
from chatd.model import Message, RoomId, Signal


class LocalBus:
    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._rooms: set[RoomId] = set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    def publish_nowait(self, event: Message | Signal) -> None:
        if event.room_id in self._rooms:
            self._sink(event)

    async def subscribe(self, room_id: RoomId) -> None:
        self._rooms.add(room_id)

    def unsubscribe(self, room_id: RoomId) -> None:
        self._rooms.discard(room_id)

    def health(self) -> str:
        return "ok"
