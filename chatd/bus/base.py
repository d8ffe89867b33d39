"""The Bus protocol: publish committed messages, deliver them to a sink.

Local sends travel the bus too, so every message reaches a room by one path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import trio

from chatd.model import Message, RoomId

Sink = Callable[[Message], None]


class Bus(Protocol):
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Carry messages until cancelled; started() once ready to publish."""

    async def publish(self, message: Message) -> None:
        """Hand a committed message to every instance (this one included)."""

    def subscribe(self, room_id: RoomId) -> None:
        """Start delivering this room's messages to the sink."""

    def unsubscribe(self, room_id: RoomId) -> None: ...
