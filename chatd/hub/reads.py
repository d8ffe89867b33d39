"""Read marks: a member's watermark moves, told to the room, at most once per interval.

A reader who scrolls moves their watermark many times a second; the room only
needs the newest position. The first move is published at once; further ones
within the interval are held back, and only the newest of them goes out
once the interval is over (within two intervals at most). Each instance
throttles the moves it committed itself.
"""

from __future__ import annotations

import trio

from chatd.bus.base import Bus
from chatd.model import RoomChange, RoomId, UserId

Key = tuple[RoomId, UserId]


class ReadMarks:
    def __init__(self, bus: Bus, interval_s: float) -> None:
        self._bus = bus
        self._interval_s = interval_s
        self._last_sent: dict[Key, float] = {}
        self._pending: dict[Key, int] = {}

    def moved(self, room_id: RoomId, user_id: UserId, message_id: int) -> None:
        """The member's watermark is now message_id (committed). Never waits."""
        key = (room_id, user_id)
        now = trio.current_time()
        last = self._last_sent.get(key)
        if last is None or now - last >= self._interval_s:
            self._publish(key, message_id, now)
        else:
            self._pending[key] = max(message_id, self._pending.get(key, 0))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Every interval, send the held-back marks that are due, and forget who has
        been quiet: the map stays as small as the set of members reading right now."""
        task_status.started()
        interval = self._interval_s
        while True:
            await trio.sleep(interval)
            now = trio.current_time()
            for key, message_id in list(self._pending.items()):
                if now - self._last_sent.get(key, now - interval) >= interval:
                    del self._pending[key]
                    self._publish(key, message_id, now)
            self._last_sent = {
                key: at
                for key, at in self._last_sent.items()
                if now - at < interval or key in self._pending
            }

    def _publish(self, key: Key, message_id: int, now: float) -> None:
        self._last_sent[key] = now
        room_id, user_id = key
        self._bus.publish_nowait(RoomChange(room_id, "read", user_id, message_id))
