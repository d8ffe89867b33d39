"""The Redis bus stops cleanly: shutting down never turns into a crash."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime

import trio
import trio.testing

from chatd.hub.member import Member
from chatd.service import open_service
from tests.conftest import settings_for
from tests.redisserver import RedisServer

_prefixes = itertools.count(1)


async def test_the_service_stops_cleanly_with_rooms_subscribed(
    redis: RedisServer, sqlite_database: str
) -> None:
    # coredis' pub/sub unsubscribes on its way out, on a connection closed under it:
    # the anyio error it raised escaped the bus and the process exited 1 (issue 9, 3).
    settings = replace(settings_for(sqlite_database), redis_url=redis.url)
    for attempt in range(5):  # it lost the race about three times in four
        run_settings = replace(settings, redis_prefix=f"stop{next(_prefixes)}:")
        async with open_service(run_settings) as service:
            owner = await service.store.create_user(f"u{attempt}@x.io", "h")
            room = await service.store.create_room(owner.id, "r", "public", datetime.now(UTC))
            member = Member(room.id, owner.id, outbox_size=8)
            await service.hub.join(member)  # subscribed on Redis when this returns
            await trio.testing.wait_all_tasks_blocked()
            service.hub.leave(member)
            await trio.testing.wait_all_tasks_blocked()
