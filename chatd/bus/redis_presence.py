"""Presence entries in Redis: one sorted set per room, scored by expiry (wall clock).

A member is "user:instance", so each instance adds and removes only its own
entries, and a user connected through two instances stays online until both
let go (or stop refreshing).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from coredis.exceptions import RedisError

from chatd.errors import PresenceUnavailable
from chatd.model import RoomId, UserId


class RedisPresence:
    def __init__(self, prefix: str, instance_id: str, client: Any) -> None:
        self._prefix = prefix
        self._instance = instance_id
        self._client = client  # () -> the bus's coredis client

    def key(self, room_id: RoomId) -> str:
        return f"{self._prefix}presence:{room_id}"

    async def refresh(self, entries: list[tuple[RoomId, UserId]], expires_at: float) -> None:
        by_room: dict[RoomId, dict[str, float]] = defaultdict(dict)
        for room_id, user_id in entries:
            by_room[room_id][f"{user_id}:{self._instance}"] = expires_at
        if not by_room:
            return
        async with self._client().pipeline(transaction=False) as pipe:
            for room_id, members in by_room.items():
                pipe.zadd(self.key(room_id), members)
                pipe.expire(self.key(room_id), 24 * 3600)  # a whole room gone quiet

    async def remove(self, room_id: RoomId, user_id: UserId) -> None:
        await self._client().zrem(self.key(room_id), [f"{user_id}:{self._instance}"])

    async def online(self, room_id: RoomId, now: float) -> set[UserId]:
        key = self.key(room_id)
        try:
            async with self._client().pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(key, 0, now)  # crashed instances' leftovers
                alive = pipe.zrangebyscore(key, now, float("inf"))
            members = await alive
        except (RedisError, OSError, TimeoutError) as exc:
            raise PresenceUnavailable("presence is unavailable while Redis is away") from exc
        return {UserId(int(member.split(":", 1)[0])) for member in members}
