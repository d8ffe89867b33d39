"""Recent history for resumes: from the Redis cache when it provably holds the
whole range asked for, otherwise from the store."""

from __future__ import annotations

from chatd.bus.recent import RecentCache
from chatd.metrics import Metrics
from chatd.model import Message, RoomId
from chatd.store import Store


class History:
    def __init__(self, store: Store, recent: RecentCache | None, metrics: Metrics) -> None:
        self._store = store
        self._recent = recent
        self._metrics = metrics

    async def between(self, room_id: RoomId, after: int, until: int) -> list[Message]:
        """Every message with after < id <= until, oldest first (ids are contiguous).
        All at once: for a range that may be long, see page()."""
        if until <= after:
            return []
        if self._recent is not None:
            cached = await self._recent.between(room_id, after, until)
            if cached is not None:
                self._metrics.recent_cache_hits.inc()
                return cached
            self._metrics.recent_cache_misses.inc()
        return await self._store.messages_after(room_id, after, until - after)

    async def page(self, room_id: RoomId, after: int, until: int, size: int) -> list[Message]:
        """The first `size` messages with after < id <= until, oldest first: a long
        range is read a page at a time, each page asked for once the last is used."""
        return await self.between(room_id, after, min(until, after + size))
