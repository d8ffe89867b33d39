"""The Bus protocol: carry committed messages and room events to every instance.

Local sends travel the bus too, so every event reaches a room by one path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import trio

from chatd.model import BusEvent, RoomId, UserEvent

Sink = Callable[[BusEvent], None]
UserSink = Callable[[UserEvent], None]


def _not_running(event: BusEvent) -> None:
    raise RuntimeError("the bus is not running: nothing receives its events yet")


def ignore_user_events(event: UserEvent) -> None:
    """The user sink of a bus run without one (tests of rooms alone)."""


class Bus(Protocol):
    async def run(
        self,
        sink: Sink,
        resync: Callable[[], None],
        user_sink: UserSink = ignore_user_events,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Carry events to `sink` until cancelled; started() once publish_nowait() may be
        called. `resync` is called when events may have been missed (a reconnect).
        `user_sink` gets every instance's user events (publish_user_nowait)."""

    def publish_nowait(self, event: BusEvent) -> None:
        """Hand a committed message or a room event to every instance, this one included.

        Never waits on the network: the local sink gets it at once.
        """

    def publish_user_nowait(self, event: UserEvent) -> None:
        """Hand an event for one user's live sockets (a notification, a disconnect) to
        every instance, this one included. Never waits; like typing, it is not kept:
        while Redis is away other instances miss it."""

    async def subscribe(self, room_id: RoomId) -> None:
        """Deliver this room's events to the sink; returns once that is in effect
        (or at once while the bus is disconnected: it resyncs on reconnect)."""

    def unsubscribe(self, room_id: RoomId) -> None: ...

    def health(self) -> str:
        """ "ok", or why other instances cannot be reached right now."""


NOT_RUNNING: Sink = _not_running
