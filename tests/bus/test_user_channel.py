"""The bus's user channel: an event for one user's sockets reaches every instance.

Three ways, as the room contract (test_contract.py): the in-process bus; a RedisBus
hearing its own publications (at once, never echoed); and a RedisBus hearing another
instance's. Redis pub/sub says nothing when it delivers nothing, so "nothing more
arrived" is checked after a fence: a user event published after the others, which
Redis delivers after them.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import trio

from chatd.bus.base import Bus
from chatd.bus.local import LocalBus
from chatd.bus.redis import RedisBus
from chatd.metrics import Metrics
from chatd.model import BusEvent, UserEvent, UserId
from tests.redisserver import RedisServer

ANN = UserId(10)
FENCE_USER = UserId(999_999)
WAIT_S = 10
_fences = itertools.count(1)

SAMPLES = {
    "notification": UserEvent(
        ANN, "notification", '{"type":"notification","payload":{"text":"héllo 👋 \\n"}}'
    ),
    "disconnect": UserEvent(ANN, "disconnect", "disconnected by an administrator"),
    "disconnect without a reason": UserEvent(ANN, "disconnect"),
}


class Heard:
    """A bus's user sink: what it delivered, in order."""

    def __init__(self) -> None:
        self.events: list[UserEvent] = []
        self.fences: list[UserEvent] = []
        self.connected = trio.Event()
        self._more = trio.Event()

    def __call__(self, event: UserEvent) -> None:
        (self.fences if event.user_id == FENCE_USER else self.events).append(event)
        self._more.set()
        self._more = trio.Event()

    async def wait_until(self, done: Callable[[], bool]) -> None:
        with trio.fail_after(WAIT_S):
            while not done():
                await self._more.wait()


def ignore(event: BusEvent) -> None:
    pass


@dataclass
class Env:
    bus: Bus
    heard: Heard
    publisher: Bus
    settle: Callable[[], Awaitable[None]]


async def fence(sender: Bus, receiver: Heard) -> None:
    ping = UserEvent(FENCE_USER, "notification", str(next(_fences)))
    sender.publish_user_nowait(ping)
    await receiver.wait_until(lambda: ping in receiver.fences)


async def start_redis_bus(nursery: trio.Nursery, url: str, instance_id: str) -> tuple[Bus, Heard]:
    heard = Heard()
    bus = RedisBus(url, instance_id=instance_id, prefix="users:", metrics=Metrics())
    await nursery.start(bus.run, ignore, heard.connected.set, heard)
    with trio.fail_after(WAIT_S):
        await heard.connected.wait()  # subscribed: the first resync says so
    return bus, heard


@pytest.fixture(params=["local", "redis", "redis-peer"])
async def env(request: pytest.FixtureRequest, nursery: trio.Nursery) -> AsyncIterator[Env]:
    if request.param == "local":
        heard = Heard()
        local = LocalBus()
        await nursery.start(local.run, ignore, lambda: None, heard)

        async def at_once() -> None:
            pass

        yield Env(local, heard, local, at_once)
        return
    server: RedisServer = request.getfixturevalue("redis")
    bus, heard = await start_redis_bus(nursery, server.url, "a")
    peer, peer_heard = await start_redis_bus(nursery, server.url, "b")
    if request.param == "redis-peer":
        yield Env(bus, heard, peer, lambda: fence(peer, heard))
        return

    async def settle_own() -> None:
        await fence(bus, peer_heard)
        await fence(peer, heard)

    yield Env(bus, heard, bus, settle_own)


@pytest.mark.parametrize("event", list(SAMPLES.values()), ids=list(SAMPLES))
async def test_a_user_event_arrives_once_as_published(env: Env, event: UserEvent) -> None:
    env.publisher.publish_user_nowait(event)
    await env.heard.wait_until(lambda: len(env.heard.events) >= 1)
    await env.settle()
    assert env.heard.events == [event]  # once, every character as sent


async def test_user_events_keep_their_order(env: Env) -> None:
    sent = [UserEvent(UserId(n), "notification", f"n{n}") for n in range(1, 51)]
    for event in sent:
        env.publisher.publish_user_nowait(event)
    await env.heard.wait_until(lambda: len(env.heard.events) >= len(sent))
    await env.settle()
    assert env.heard.events == sent
