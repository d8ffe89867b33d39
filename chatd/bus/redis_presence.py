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
from chatd.tracing import traced_redis


class RedisPresence:
    def __init__(self, prefix: str, instance_id: str, client: Any) -> None:
        self._prefix = prefix
        self._instance = instance_id
        self._client = client  # () -> the bus's coredis client

    def key(self, room_id: RoomId) -> str:
        return f"{self._prefix}presence:{room_id}"

    def users_key(self, instance: str) -> str:
        """The users with a live socket (any room) through this instance, by expiry."""
        return f"{self._prefix}presence:users:{instance}"

    @property
    def instances_key(self) -> str:
        """The instances that have reported users, by expiry: where users_key() are."""
        return f"{self._prefix}presence:instances"

    @traced_redis("presence.refresh", "PIPELINE")
    async def refresh(self, entries: list[tuple[RoomId, UserId]], expires_at: float) -> None:
        by_room: dict[RoomId, dict[str, float]] = defaultdict(dict)
        users: set[UserId] = set()
        for room_id, user_id in entries:
            by_room[room_id][f"{user_id}:{self._instance}"] = expires_at
            users.add(user_id)
        if not by_room:
            return
        mine = self.users_key(self._instance)
        async with self._client().pipeline(transaction=False) as pipe:
            for room_id, members in by_room.items():
                pipe.zadd(self.key(room_id), members)
                pipe.expire(self.key(room_id), 24 * 3600)  # a whole room gone quiet
            # Online anywhere (the notifications role asks), in the same round trip and
            # two commands more however many users: one set per instance.
            pipe.zadd(mine, {str(user_id): expires_at for user_id in users})
            pipe.expire(mine, 24 * 3600)
            pipe.zadd(self.instances_key, {self._instance: expires_at})

    @traced_redis("presence.remove", "ZREM")
    async def remove(self, room_id: RoomId, user_id: UserId) -> None:
        await self._client().zrem(self.key(room_id), [f"{user_id}:{self._instance}"])

    @traced_redis("presence.online", "PIPELINE")
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

    @traced_redis("presence.remove_user", "ZREM")
    async def remove_user(self, user_id: UserId) -> None:
        await self._client().zrem(self.users_key(self._instance), [str(user_id)])

    @traced_redis("presence.online_anywhere", "PIPELINE")
    async def online_anywhere(self, user_ids: set[UserId], now: float) -> set[UserId]:
        if not user_ids:
            return set()
        names = [str(user_id) for user_id in sorted(user_ids)]
        client = self._client()
        try:
            async with client.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(self.instances_key, 0, now)  # crashed instances
                live = pipe.zrangebyscore(self.instances_key, now, float("inf"))
            instances = await live
            if not instances:
                return set()
            async with client.pipeline(transaction=False) as pipe:
                scores = [pipe.zmscore(self.users_key(i), names) for i in instances]
            found = [await each for each in scores]
        except (RedisError, OSError, TimeoutError) as exc:
            raise PresenceUnavailable("presence is unavailable while Redis is away") from exc
        return {
            UserId(int(name))
            for per_instance in found
            for name, score in zip(names, per_instance, strict=True)
            if score is not None and score > now
        }
