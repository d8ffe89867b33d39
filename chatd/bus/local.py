"""The in-process bus: one instance, so publishing is delivering."""

from __future__ import annotations

from collections.abc import Callable

import trio

from chatd.bus.base import NOT_RUNNING, Sink
from chatd.model import BusEvent, RoomId


class LocalBus:
    def __init__(self) -> None:
        self._sink = NOT_RUNNING
        self._rooms: set[RoomId] = set()

    async def run(
        self,
        sink: Sink,
        resync: Callable[[], None] = lambda: None,  # nothing is ever missed in process
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        self._sink = sink
        task_status.started()
        await trio.sleep_forever()

    def publish_nowait(self, event: BusEvent) -> None:
        if event.room_id in self._rooms:
            self._sink(event)

    async def subscribe(self, room_id: RoomId) -> None:
        self._rooms.add(room_id)

    def unsubscribe(self, room_id: RoomId) -> None:
        self._rooms.discard(room_id)

    def health(self) -> str:
        return "ok"
