"""The Bus contract, over every backend: what the hub relies on when it subscribes a
room and publishes to it.

Each test runs three ways:
- "local": the in-process bus, hearing its own publications;
- "redis": a RedisBus hearing its own publications (delivered at once, never echoed);
- "redis-peer": the same RedisBus hearing another instance's (another instance id, same
  Redis and prefix): the path every event of a cluster takes through Redis.

Redis pub/sub says nothing when it delivers nothing, so "nothing arrived" is checked
after a fence (`BusEnv.settle`): an event that travels the same connections after
everything published so far. Once it has arrived, everything before it has too.

The tests after the contract are Redis-only: two prefixes on one Redis, and a Redis
restart, have no in-process counterpart.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import trio

from chatd.bus.base import Bus
from chatd.bus.local import LocalBus
from chatd.bus.redis import RedisBus
from chatd.metrics import Metrics
from chatd.model import BusEvent, Message, MessageId, RoomChange, RoomId, Signal, UserId
from tests.redisserver import RedisServer

ROOM, OTHER_ROOM = RoomId(1), RoomId(2)
FENCE_ROOM = RoomId(999_999)  # every bus of a test listens here; never in `events`
ANN, BOB = UserId(10), UserId(20)
PREFIX = "contract:"
WAIT_S = 10
WHEN = datetime(2024, 5, 17, 9, 30, 15, 123456, tzinfo=UTC)
_fences = itertools.count(1)


def message(n: int, room_id: RoomId = ROOM, text: str | None = None) -> Message:
    return Message(MessageId(n), room_id, ANN, f"message {n}" if text is None else text, WHEN)


# One of each kind of event a bus carries, as a room's members would get it.
# A new kind of event is one more line here.
SAMPLES: dict[str, BusEvent] = {
    "message": Message(
        MessageId(41),
        ROOM,
        ANN,
        'héllo 👋 שלום नमस्ते e\u0301 "quoted" \\ \n\t{"json": [1]} \u2028 end',
        WHEN,
        client_id="client-ü-1",
    ),
    "long message without client id": Message(
        MessageId(42), ROOM, BOB, "x" * 10_000, WHEN + timedelta(days=400)
    ),
    "message from another time zone": Message(
        MessageId(43),
        ROOM,
        BOB,
        "bonjour",
        datetime(2024, 1, 2, 3, 4, 5, 6, timezone(timedelta(hours=2))),
    ),
    "message with mentions, edited and deleted since": Message(
        MessageId(44),
        ROOM,
        BOB,
        "",
        WHEN,
        edited_at=WHEN + timedelta(minutes=1),
        deleted=True,
        mentions=(ANN, UserId(30)),
    ),
    "edit": Message(
        MessageId(45),
        ROOM,
        ANN,
        "fixed @bob",
        WHEN,
        kind="edited",
        target_id=MessageId(41),
        mentions=(BOB,),
    ),
    "deletion": Message(
        MessageId(46), ROOM, BOB, "", WHEN, kind="deleted", target_id=MessageId(41)
    ),
    "reaction added": Message(
        MessageId(47),
        ROOM,
        BOB,
        "\N{MAN}\u200d\N{WOMAN}\u200d\N{GIRL}",
        WHEN,
        kind="reaction_added",
        target_id=MessageId(41),
        count=3,
    ),
    "reaction removed": Message(
        MessageId(48),
        ROOM,
        ANN,
        "\N{THUMBS UP SIGN}",
        WHEN,
        kind="reaction_removed",
        target_id=MessageId(41),
        count=0,
    ),
    "typing": Signal(ROOM, "typing", ANN),
    "presence": Signal(ROOM, "presence"),
    "resync": Signal(ROOM, "resync"),
    "room deleted": RoomChange(ROOM, "deleted"),
    "member removed": RoomChange(ROOM, "member_removed", BOB),
    "visibility changed": RoomChange(ROOM, "visibility_changed"),
    "member left": RoomChange(ROOM, "member_removed", BOB, "left"),
    "member added": RoomChange(ROOM, "member_added", BOB, "member"),
    "role changed": RoomChange(ROOM, "role_changed", ANN, "admin"),
    "room updated": RoomChange(ROOM, "room_updated"),
    "read mark": RoomChange(ROOM, "read", BOB, 46),
    "room closed": RoomChange(ROOM, "closed"),
    "room reopened": RoomChange(ROOM, "reopened"),
    "room purged": RoomChange(ROOM, "purged", None, 46),
}
samples = pytest.mark.parametrize("event", list(SAMPLES.values()), ids=list(SAMPLES))


class Received:
    """A bus's sink: what it delivered, in order, and how often it reconnected."""

    def __init__(self) -> None:
        self.events: list[BusEvent] = []
        self.fences: list[BusEvent] = []
        self.reconnects = 0
        self._more = trio.Event()

    def __call__(self, event: BusEvent) -> None:
        (self.fences if event.room_id == FENCE_ROOM else self.events).append(event)
        self._wake()

    def reconnected(self) -> None:
        self.reconnects += 1
        self._wake()

    def _wake(self) -> None:
        self._more.set()
        self._more = trio.Event()

    async def wait_until(self, done: Callable[[], bool]) -> None:
        with trio.fail_after(WAIT_S):
            while not done():
                await self._more.wait()

    async def wait_for(self, count: int) -> list[BusEvent]:
        await self.wait_until(lambda: len(self.events) >= count)
        return self.events


@dataclass
class BusEnv:
    kind: str  # "local", "redis" or "redis-peer"
    bus: Bus  # the bus under test, delivering to `received`
    received: Received
    publisher: Bus  # whose publications it hears: itself, or another instance
    settle: Callable[[], Awaitable[None]]  # until everything published so far has arrived

    def publish(self, *events: BusEvent) -> None:
        for event in events:
            self.publisher.publish_nowait(event)


async def fence(sender: Bus, receiver: Received) -> None:
    """Until `receiver` has handled everything Redis sent it up to `sender`'s latest
    publication: the fence goes out after them, and Redis keeps each subscriber's order.

    The fence is a message, published after everything before it.
    """
    ping = Message(MessageId(next(_fences)), FENCE_ROOM, ANN, "fence", WHEN)
    sender.publish_nowait(ping)
    await receiver.wait_until(lambda: ping in receiver.fences)


async def start_redis_bus(
    nursery: trio.Nursery, url: str, instance_id: str, prefix: str = PREFIX
) -> tuple[RedisBus, Received]:
    """A RedisBus connected and listening to the fence room."""
    received = Received()
    bus = RedisBus(
        url,
        instance_id=instance_id,
        prefix=prefix,
        backoff_cap_s=0.5,  # a restarted Redis is found again quickly
        metrics=Metrics(),
    )
    await nursery.start(bus.run, received, received.reconnected)
    await received.wait_until(lambda: received.reconnects > 0)  # connected
    await bus.subscribe(FENCE_ROOM)
    return bus, received


@pytest.fixture(params=["local", "redis", "redis-peer"])
def backend(request: pytest.FixtureRequest) -> tuple[str, RedisServer | None]:
    server = None if request.param == "local" else request.getfixturevalue("redis")
    return request.param, server


@pytest.fixture
async def env(
    backend: tuple[str, RedisServer | None], nursery: trio.Nursery
) -> AsyncIterator[BusEnv]:
    kind, server = backend
    if server is None:
        received = Received()
        local = LocalBus()
        await nursery.start(local.run, received)

        async def delivered_at_once() -> None:
            pass

        yield BusEnv(kind, local, received, local, delivered_at_once)
        return
    bus, received = await start_redis_bus(nursery, server.url, "a")
    peer, peer_received = await start_redis_bus(nursery, server.url, "b")
    if kind == "redis-peer":

        async def settle_peer() -> None:
            await fence(peer, received)

        yield BusEnv(kind, bus, received, peer, settle_peer)
        return

    async def settle_own() -> None:
        # Our own publications never come back: once the peer has heard them,
        # Redis has sent us anything it would, and the peer's answer comes after.
        await fence(bus, peer_received)
        await fence(peer, received)

    yield BusEnv(kind, bus, received, bus, settle_own)


# -- the contract --------------------------------------------------------------


@samples
async def test_an_event_of_a_subscribed_room_arrives_once_as_published(
    env: BusEnv, event: BusEvent
) -> None:
    await env.bus.subscribe(ROOM)
    env.publish(event)
    [got] = await env.received.wait_for(1)
    await env.settle()
    assert env.received.events == [event]  # once: our own are not heard again via Redis
    if isinstance(event, Message):  # every field, the text to the last code point
        assert isinstance(got, Message)
        assert (got.id, got.room_id, got.user_id, got.text, got.created_at, got.client_id) == (
            event.id,
            event.room_id,
            event.user_id,
            event.text,
            event.created_at,
            event.client_id,
        )
        assert got.to_json() == event.to_json()  # what clients are sent
    else:  # a signal or a room change: its kind, and whose it is
        assert not isinstance(got, Message)
        assert (type(got), got.room_id, got.kind, got.user_id) == (
            type(event),
            event.room_id,
            event.kind,
            event.user_id,
        )


@samples
async def test_events_of_rooms_not_subscribed_do_not_arrive(env: BusEnv, event: BusEvent) -> None:
    await env.bus.subscribe(ROOM)
    elsewhere = replace(event, room_id=OTHER_ROOM)
    env.publish(elsewhere, event)
    await env.received.wait_for(1)
    await env.settle()
    assert env.received.events == [event]


@samples
async def test_nothing_arrives_after_unsubscribe(env: BusEnv, event: BusEvent) -> None:
    await env.bus.subscribe(ROOM)
    await env.bus.subscribe(OTHER_ROOM)
    # Unsubscribed while a burst is still on its way (Redis unsubscribes a moment later).
    env.publish(event, *(message(n) for n in range(1, 2_001)))
    await env.received.wait_for(1)
    env.bus.unsubscribe(ROOM)
    before = list(env.received.events)
    elsewhere = replace(event, room_id=OTHER_ROOM)
    env.publish(event, elsewhere)
    await env.received.wait_until(lambda: elsewhere in env.received.events)
    await env.settle()
    assert env.received.events == [*before, elsewhere]


async def test_a_room_subscribed_again_is_heard_again(env: BusEnv) -> None:
    await env.bus.subscribe(ROOM)
    env.bus.unsubscribe(ROOM)
    await env.bus.subscribe(ROOM)  # the last member left and a new one joined
    env.publish(message(1))
    assert await env.received.wait_for(1) == [message(1)]


async def test_subscribe_returns_once_it_is_in_effect(env: BusEnv) -> None:
    # A member who joins is sent what is published right after they joined.
    for n, room_id in enumerate(map(RoomId, range(100, 120)), start=1):
        await env.bus.subscribe(room_id)
        env.publish(message(n, room_id))
    await env.settle()
    assert [event.room_id for event in env.received.events] == list(range(100, 120))


async def test_many_messages_published_at_once_all_arrive_in_order(env: BusEnv) -> None:
    await env.bus.subscribe(ROOM)
    await env.bus.subscribe(OTHER_ROOM)
    # Interleaved rooms: each room's messages keep their order.
    sent = [message(n // 2 + 1, ROOM if n % 2 else OTHER_ROOM) for n in range(4_000)]
    env.publish(*sent)
    received = await env.received.wait_for(len(sent))
    await env.settle()
    assert len(received) == len(sent)
    for room_id in (ROOM, OTHER_ROOM):
        assert [e for e in received if e.room_id == room_id] == [
            e for e in sent if e.room_id == room_id
        ]


async def test_messages_published_one_by_one_arrive_in_order(env: BusEnv) -> None:
    await env.bus.subscribe(ROOM)
    sent = [message(n) for n in range(1, 51)]
    for event in sent:
        env.publish(event)
        await trio.lowlevel.checkpoint()  # separate batches, not one
    assert await env.received.wait_for(len(sent)) == sent


async def test_a_room_s_events_arrive_in_publish_order(env: BusEnv) -> None:
    # ann sends a message and starts typing the next one: members see her typing
    # (a typing event overtaken by the message it came after is cleared by it).
    await env.bus.subscribe(ROOM)
    sent: list[BusEvent] = [
        message(1),
        Signal(ROOM, "typing", ANN),
        message(2),
        RoomChange(ROOM, "member_removed", BOB),
    ]
    env.publish(*sent)
    assert await env.received.wait_for(len(sent)) == sent


async def test_health_is_ok_while_running(env: BusEnv) -> None:
    assert env.bus.health() == "ok"
    await env.bus.subscribe(ROOM)
    env.publish(message(1))
    await env.received.wait_for(1)
    await env.settle()
    assert env.bus.health() == "ok"


# -- Redis only: several instances share one Redis -----------------------------
# (LocalBus is one process's bus: it has no other instance, prefix or server.)


async def test_instances_hear_only_their_own_prefix(
    redis: RedisServer, nursery: trio.Nursery
) -> None:
    # Two deployments on one Redis, like staging beside production.
    a1, a1_got = await start_redis_bus(nursery, redis.url, "a1", prefix="blue:")
    a2, a2_got = await start_redis_bus(nursery, redis.url, "a2", prefix="blue:")
    b1, b1_got = await start_redis_bus(nursery, redis.url, "b1", prefix="green:")
    b2, b2_got = await start_redis_bus(nursery, redis.url, "b2", prefix="green:")
    for bus in (a1, a2, b1, b2):
        await bus.subscribe(ROOM)
    blue, green = message(1, text="for blue"), message(1, text="for green")
    a1.publish_nowait(blue)
    b1.publish_nowait(green)
    assert await a2_got.wait_for(1) == [blue]
    assert await b2_got.wait_for(1) == [green]
    # Redis has sent both publications to everyone it would; fence each bus after that.
    for sender, receiver in ((a2, a1_got), (a1, a2_got), (b2, b1_got), (b1, b2_got)):
        await fence(sender, receiver)
    assert a1_got.events == a2_got.events == [blue]
    assert b1_got.events == b2_got.events == [green]


async def wait_for_health(bus: RedisBus, ok: bool) -> None:
    with trio.fail_after(WAIT_S):
        # Nothing announces a lost connection but health() itself: ask again.
        while (bus.health() == "ok") != ok:  # noqa: ASYNC110
            await trio.sleep(0.01)


async def test_after_a_redis_restart_the_bus_recovers_and_delivers_again(
    redis: RedisServer, nursery: trio.Nursery
) -> None:
    a, a_got = await start_redis_bus(nursery, redis.url, "a")
    b, b_got = await start_redis_bus(nursery, redis.url, "b")
    for bus in (a, b):
        await bus.subscribe(ROOM)
    a_reconnects, b_reconnects = a_got.reconnects, b_got.reconnects

    await trio.to_thread.run_sync(redis.stop)
    await wait_for_health(a, ok=False)
    reason = a.health()  # one a person can read
    assert reason.startswith("redis unreachable: ") and reason.removeprefix("redis unreachable: ")
    a.publish_nowait(message(1))  # never waits: this instance's members get it at once
    assert a_got.events == [message(1)]

    await trio.to_thread.run_sync(redis.start)
    # resync: every local room refills from the store what Redis did not carry
    await a_got.wait_until(lambda: a_got.reconnects > a_reconnects)
    await b_got.wait_until(lambda: b_got.reconnects > b_reconnects)
    assert a.health() == b.health() == "ok"

    b.publish_nowait(message(2))
    await a_got.wait_until(lambda: message(2) in a_got.events)
    a.publish_nowait(message(3))
    await b_got.wait_until(lambda: message(3) in b_got.events)
    await fence(b, a_got)
    await fence(a, b_got)
    assert a.health() == b.health() == "ok"  # and stays so once both have published
