"""The Bus protocol: carry committed messages and room signals to every instance.

Local sends travel the bus too, so every message reaches a room by one path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import trio

from chatd.model import Message, RoomId, Signal

Sink = Callable[[Message | Signal], None]


class Bus(Protocol):
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Carry messages until cancelled; started() once publish_nowait() may be called."""

    def publish_nowait(self, event: Message | Signal) -> None:
        """Hand a committed message or a signal to every instance, this one included.

        Never waits on the network: the local sink gets it at once.
        """

    async def subscribe(self, room_id: RoomId) -> None:
        """Deliver this room's events to the sink; returns once that is in effect
        (or at once while the bus is disconnected: it resyncs on reconnect)."""

    def unsubscribe(self, room_id: RoomId) -> None: ...

    def health(self) -> str:
        """ "ok", or why other instances cannot be reached right now."""
