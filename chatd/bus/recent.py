"""The last N messages of each room, kept in Redis beside the bus.

Written in the same pipeline that publishes a message, before the PUBLISH,
so anything a room has delivered is cached — unless Redis was away. A read
therefore only answers when the cache holds every id of the range asked
for; otherwise it says "don't know" (None) and the caller asks the store.
PostgreSQL stays the source of truth.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio
from coredis.exceptions import RedisError

from chatd.model import Message, RoomId
from chatd.tracing import traced_redis

log = logging.getLogger(__name__)

TTL_S = 7 * 24 * 3600  # idle rooms fall out of the cache
READ_TIMEOUT_S = 0.5  # slower than this, the store is the better bet


class RecentCache:
    def __init__(self, prefix: str, size: int) -> None:
        self._prefix = prefix
        self._size = size
        self.client: Any = None  # set by the bus while it runs

    def key(self, room_id: RoomId) -> str:
        return f"{self._prefix}recent:{room_id}"

    @staticmethod
    def encode(message: Message) -> str:
        """The message as the cache stores it (and the bus carries it). Deterministic,
        so a publication retried after a fault does not add a second member."""
        return message.encoded

    def add(self, pipe: Any, room_id: RoomId, messages: list[Message], encoded: list[str]) -> None:
        """Queue on `pipe` the writes that cache these messages of one room."""
        key = self.key(room_id)
        pipe.zadd(key, {text: message.id for message, text in zip(messages, encoded, strict=True)})
        pipe.zremrangebyrank(key, 0, -(self._size + 1))
        pipe.expire(key, TTL_S)

    def drop(self, pipe: Any, room_id: RoomId) -> None:
        """Queue on `pipe` the removal of the room's whole cache (its messages were purged:
        none may be replayed from here)."""
        pipe.delete([self.key(room_id)])

    def forget(self, pipe: Any, room_id: RoomId, message_ids: list[int]) -> None:
        """Queue on `pipe` the removal of these messages' cached copies."""
        key = self.key(room_id)
        for message_id in message_ids:
            pipe.zremrangebyscore(key, message_id, message_id)

    @traced_redis("recent.read", "ZRANGEBYSCORE")
    async def between(self, room_id: RoomId, after: int, until: int) -> list[Message] | None:
        """Every message with after < id <= until, oldest first, or None if not all cached."""
        if until <= after:
            return []
        if self.client is None or until - after > self._size:
            return None
        try:
            with trio.fail_after(READ_TIMEOUT_S):
                raw = await self.client.zrangebyscore(self.key(room_id), after + 1, until)
        except (RedisError, OSError, trio.TooSlowError):
            return None
        messages = {m.id: m for m in (Message.from_json(json.loads(item)) for item in raw)}
        if sorted(messages) != list(range(after + 1, until + 1)):
            return None
        return [messages[i] for i in sorted(messages)]
