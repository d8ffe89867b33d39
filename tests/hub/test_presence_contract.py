"""The PresenceBackend contract, over every backend: who is online in a room.

The backends take the time as an argument (Redis scores are wall-clock seconds shared
by every instance), so each test passes explicit `now` values: no clock, no waiting.
The tests after the contract are Redis-only: several instances (or deployments) share
one Redis, while LocalPresence belongs to one instance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import coredis
import pytest

from chatd.bus.redis_presence import RedisPresence
from chatd.hub.presence import LocalPresence, PresenceBackend
from chatd.model import RoomId, UserId
from tests.redisserver import RedisServer

ROOM, OTHER_ROOM, EMPTY_ROOM = RoomId(1), RoomId(2), RoomId(3)
ANN, BOB = UserId(10), UserId(20)
T = 1_700_000_000.0  # a wall-clock time, as the service passes
PREFIX = "contract:"


@pytest.fixture
async def client(redis: RedisServer) -> AsyncIterator[coredis.Redis[str]]:
    redis_client = coredis.Redis.from_url(redis.url, decode_responses=True)
    async with redis_client:
        yield redis_client


@pytest.fixture(params=["local", "redis"])
def backend(request: pytest.FixtureRequest) -> tuple[str, RedisServer | None]:
    server = None if request.param == "local" else request.getfixturevalue("redis")
    return request.param, server


@pytest.fixture
async def presence(
    backend: tuple[str, RedisServer | None],
) -> AsyncIterator[PresenceBackend]:
    _, server = backend
    if server is None:
        yield LocalPresence()
        return
    client = coredis.Redis.from_url(server.url, decode_responses=True)
    async with client:
        yield RedisPresence(PREFIX, "here", lambda: client)


# -- the contract --------------------------------------------------------------


async def test_refreshed_users_are_online_until_expires_at(presence: PresenceBackend) -> None:
    await presence.refresh([(ROOM, ANN), (ROOM, BOB)], expires_at=T + 30)
    assert await presence.online(ROOM, now=T) == {ANN, BOB}
    assert await presence.online(ROOM, now=T + 29.999) == {ANN, BOB}
    assert await presence.online(ROOM, now=T + 30) == set()


async def test_online_leaves_out_expired_entries(presence: PresenceBackend) -> None:
    # bob's instance stopped refreshing earlier (it crashed): he drops out first.
    await presence.refresh([(ROOM, ANN)], expires_at=T + 20)
    await presence.refresh([(ROOM, BOB)], expires_at=T + 10)
    assert await presence.online(ROOM, now=T + 15) == {ANN}
    assert await presence.online(ROOM, now=T + 25) == set()


async def test_refreshing_again_extends(presence: PresenceBackend) -> None:
    await presence.refresh([(ROOM, ANN)], expires_at=T + 10)
    await presence.refresh([(ROOM, ANN)], expires_at=T + 40)  # the next heartbeat
    assert await presence.online(ROOM, now=T + 20) == {ANN}
    assert await presence.online(ROOM, now=T + 40) == set()


async def test_a_user_who_expired_comes_back_with_a_refresh(presence: PresenceBackend) -> None:
    await presence.refresh([(ROOM, ANN)], expires_at=T + 10)
    assert await presence.online(ROOM, now=T + 15) == set()
    await presence.refresh([(ROOM, ANN)], expires_at=T + 45)  # she reconnected
    assert await presence.online(ROOM, now=T + 16) == {ANN}


async def test_remove_takes_out_that_user_in_that_room_only(presence: PresenceBackend) -> None:
    await presence.refresh([(ROOM, ANN), (ROOM, BOB), (OTHER_ROOM, ANN)], expires_at=T + 30)
    await presence.remove(ROOM, ANN)  # ann closed her socket in ROOM
    assert await presence.online(ROOM, now=T) == {BOB}
    assert await presence.online(OTHER_ROOM, now=T) == {ANN}
    await presence.remove(ROOM, ANN)  # twice, and someone never there: no error
    await presence.remove(EMPTY_ROOM, BOB)
    assert await presence.online(ROOM, now=T) == {BOB}


async def test_rooms_are_independent(presence: PresenceBackend) -> None:
    await presence.refresh([(ROOM, ANN), (OTHER_ROOM, BOB)], expires_at=T + 30)
    await presence.refresh([(OTHER_ROOM, ANN)], expires_at=T + 10)
    assert await presence.online(ROOM, now=T) == {ANN}
    assert await presence.online(OTHER_ROOM, now=T) == {ANN, BOB}
    assert await presence.online(EMPTY_ROOM, now=T) == set()
    # ann's entry in OTHER_ROOM expiring leaves her online in ROOM.
    assert await presence.online(OTHER_ROOM, now=T + 20) == {BOB}
    assert await presence.online(ROOM, now=T + 20) == {ANN}


async def test_many_entries_in_one_refresh(presence: PresenceBackend) -> None:
    # A heartbeat of an instance with 5,000 connections: 50 rooms of 100 users.
    rooms = [RoomId(100 + r) for r in range(50)]
    users = {room_id: {UserId(room_id * 1_000 + u) for u in range(100)} for room_id in rooms}
    entries = [(room_id, user_id) for room_id in rooms for user_id in sorted(users[room_id])]
    assert len(entries) == 5_000
    await presence.refresh(entries, expires_at=T + 30)
    for room_id in rooms:
        assert await presence.online(room_id, now=T) == users[room_id]
    await presence.refresh([], expires_at=T + 60)  # an instance with nobody: nothing changes
    assert await presence.online(rooms[0], now=T + 45) == set()


async def test_a_user_is_online_anywhere_while_refreshed_in_any_room(
    presence: PresenceBackend,
) -> None:
    # What the notifications role asks before it notifies of a DM (docs/operations.md).
    await presence.refresh([(ROOM, ANN), (OTHER_ROOM, ANN)], expires_at=T + 30)
    assert await presence.online_anywhere({ANN, BOB}, now=T) == {ANN}
    await presence.remove(ROOM, ANN)  # her socket in one room closed: still online
    assert await presence.online_anywhere({ANN, BOB}, now=T) == {ANN}
    assert await presence.online_anywhere({ANN}, now=T + 30) == set()  # expired
    await presence.refresh([(ROOM, BOB)], expires_at=T + 60)
    await presence.remove_user(BOB)  # his last socket anywhere closed
    assert await presence.online_anywhere({ANN, BOB}, now=T) == {ANN}
    assert await presence.online_anywhere(set(), now=T) == set()


# -- Redis only: entries of several instances in one Redis -----------------------
# (LocalPresence serves one instance: its connections are counted by Presence.)


async def test_a_user_stays_online_while_another_instance_still_has_them(
    client: coredis.Redis[str],
) -> None:
    # ann has a tab open through each of two instances.
    here = RedisPresence(PREFIX, "here", lambda: client)
    there = RedisPresence(PREFIX, "there", lambda: client)
    await here.refresh([(ROOM, ANN), (ROOM, BOB)], expires_at=T + 30)
    await there.refresh([(ROOM, ANN)], expires_at=T + 60)
    await here.remove(ROOM, ANN)  # she closed the tab on this instance
    assert await here.online(ROOM, now=T) == await there.online(ROOM, now=T) == {ANN, BOB}
    # this instance crashed: its entries expire, the other instance's stay.
    assert await there.online(ROOM, now=T + 45) == {ANN}
    await there.remove(ROOM, ANN)
    assert await here.online(ROOM, now=T + 45) == set()


async def test_two_prefixes_do_not_see_each_other(client: coredis.Redis[str]) -> None:
    # Two deployments on one Redis, like staging beside production.
    blue = RedisPresence("blue:", "same-instance-id", lambda: client)
    green = RedisPresence("green:", "same-instance-id", lambda: client)
    await blue.refresh([(ROOM, ANN)], expires_at=T + 30)
    await green.refresh([(ROOM, BOB)], expires_at=T + 30)
    await green.remove(ROOM, ANN)
    assert await blue.online(ROOM, now=T) == {ANN}
    assert await green.online(ROOM, now=T) == {BOB}


async def test_online_anywhere_while_another_instance_still_has_them(
    client: coredis.Redis[str],
) -> None:
    here = RedisPresence(PREFIX, "here", lambda: client)
    there = RedisPresence(PREFIX, "there", lambda: client)
    await here.refresh([(ROOM, ANN)], expires_at=T + 30)
    await there.refresh([(OTHER_ROOM, ANN)], expires_at=T + 60)
    await here.remove_user(ANN)  # gone from this instance, not from the other
    assert await here.online_anywhere({ANN}, now=T) == {ANN}
    await there.remove_user(ANN)
    assert await here.online_anywhere({ANN}, now=T) == set()
