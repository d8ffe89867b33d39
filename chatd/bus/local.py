"""The in-process bus: one instance, so publishing is delivering."""

from __future__ import annotations

from collections.abc import Callable

import trio

from chatd.bus.base import NOT_RUNNING, Sink, UserSink, ignore_user_events
from chatd.model import BusEvent, RoomId, UserEvent


class LocalBus:
    def __init__(self) -> None:
        self._sink = NOT_RUNNING
        self._user_sink: UserSink = ignore_user_events
        self._rooms: set[RoomId] = set()

    async def run(
        self,
        sink: Sink,
        resync: Callable[[], None] = lambda: None,  # nothing is ever missed in process
        user_sink: UserSink = ignore_user_events,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        self._sink = sink
        self._user_sink = user_sink
        task_status.started()
        await trio.sleep_forever()

    def publish_nowait(self, event: BusEvent) -> None:
        if event.room_id in self._rooms:
            self._sink(event)

    def publish_user_nowait(self, event: UserEvent) -> None:
        self._user_sink(event)

    async def subscribe(self, room_id: RoomId) -> None:
        self._rooms.add(room_id)

    def unsubscribe(self, room_id: RoomId) -> None:
        self._rooms.discard(room_id)

    def health(self) -> str:
        return "ok"
