"""The issue's "Done when": a real RabbitMQ consumer receives exactly one event per
committed change, across a broker restart, a relay that crashes between publishing a
batch and marking it, and a serving instance killed (-9) while it publishes.

The consumer is feed.follow() on a durable queue. Beside it a raw observer records
every message the broker delivers, copies included: the relay's crashes must show
there as ids delivered twice, and nowhere in what the consumer saw. Committed changes
are counted from the store, and checked against what the API acknowledged.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, HandshakeError

from chatd.config import Settings
from chatd.events.event import Event
from chatd.events.feed import follow
from chatd.events.relay import Relay
from chatd.events.transport import (
    PublishFailed,
    SubscriptionLost,
    open_publisher,
    open_subscription,
)
from chatd.store import Store, open_store
from tests.conftest import start_server
from tests.helpers import Account, Api
from tests.processes import Cluster
from tests.rabbitserver import RabbitServer
from tests.redisserver import RedisServer

SETTLE_S = 120  # a broker restart, and the relay's backoff while it was away


class PublishThenCrash:
    """The real RabbitMQ publisher, except that every `every`-th batch, once the broker
    has taken it, the relay dies before it marks the rows: the outbox transaction rolls
    back and the same events are published again, under the same ids."""

    def __init__(self, settings: Settings, every: int = 3) -> None:
        self.real = open_publisher(settings)
        self.every = every
        self.batches = 0
        self.crashed: list[int] = []  # ids of events the broker took before a crash

    def publish(self, events: Sequence[Event]) -> None:
        self.real.publish(events)
        if events:
            self.batches += 1
            if self.batches % self.every == 0:
                self.crashed.extend(e.id for e in events)
                raise PublishFailed("the relay died between publish and mark (test)")

    def close(self) -> None:
        self.real.close()

    def health(self) -> str:
        return self.real.health()


@dataclass
class Observers:
    """The consumer under test, and the raw broker beside it."""

    consumed: list[Event] = field(default_factory=list)
    raw_ids: list[int] = field(default_factory=list)
    progress: trio.Event = field(default_factory=trio.Event)

    async def consume(
        self, store: Store, settings: Settings, *, task_status: trio.TaskStatus[None]
    ) -> None:
        async with follow(store, settings, after=0, queue="exactly-once") as feed:
            task_status.started()
            async for event in feed:
                self.consumed.append(event)
                self.progress.set()
                self.progress = trio.Event()

    async def record_raw(self, settings: Settings, *, task_status: trio.TaskStatus[None]) -> None:
        """Every delivery of a durable queue, resubscribing across the broker's restart."""
        started = False
        while True:
            try:
                async with open_subscription(settings, ["#"], queue="raw") as raw:
                    if not started:
                        task_status.started()
                        started = True
                    while True:
                        delivery = await raw.receive()
                        self.raw_ids.append(delivery.event.id)
                        raw.ack(delivery.tag)
            except SubscriptionLost:
                await trio.sleep(0.2)  # the broker is away: try again shortly

    async def wait_consumed_all(self, store: Store) -> int:
        """Until everything committed is published and the consumer has it; the last id."""
        with trio.fail_after(SETTLE_S):
            while True:
                backlog, _ = await store.outbox_backlog()
                last = await store.last_event_id()
                if backlog == 0 and self.consumed and self.consumed[-1].id >= last:
                    return last
                with trio.move_on_after(0.5):  # the relay may publish the rest meanwhile
                    await self.progress.wait()

    async def check(self, store: Store, acked: Sequence[tuple[int, int]]) -> dict[str, int]:
        """Exactly once, in order, only what committed; what the API acknowledged is in it."""
        last = await self.wait_consumed_all(store)
        with trio.move_on_after(1):  # nothing more comes: no copy, nothing uncommitted
            await self.progress.wait()
            raise AssertionError(f"more after the end: {self.consumed[-3:]}")
        committed = await store.events_after(0, last + 1)
        assert [e.id for e in committed] == list(range(1, last + 1))
        assert [e.id for e in self.consumed] == list(range(1, last + 1))
        assert [(e.type, e.room_id, e.data) for e in self.consumed] == [
            (e.type, e.room_id, e.data) for e in committed
        ]
        created = Counter(
            (e.room_id, e.body()["data"]["id"])
            for e in self.consumed
            if e.type == "message.created"
        )
        assert all(created[message] == 1 for message in acked), "an acknowledged message"
        copies = Counter(self.raw_ids)
        return {"events": last, "copies at the broker": sum(n - 1 for n in copies.values())}


async def chatter(
    api: Api, who: Account, room_id: int, count: int, acked: list[tuple[int, int]]
) -> None:
    """Send messages one by one, each acknowledged (echoed: committed) before the next;
    stops quietly if the instance goes away."""
    try:
        async with api.socket(who, room_id) as ws:
            for i in range(count):
                await ws.send(f"message {len(acked)} ({i})")
                acked.append((room_id, (await ws.message())["id"]))
    except (ConnectionClosed, HandshakeError, OSError):
        pass  # killed under us: the unacknowledged may or may not have committed


@asynccontextmanager
async def watching(store: Store, settings: Settings) -> AsyncIterator[Observers]:
    """The consumer under test and the raw observer, running until the block ends."""
    observers = Observers()
    async with trio.open_nursery() as watchers:
        await watchers.start(observers.consume, store, settings)
        await watchers.start(observers.record_raw, settings)
        yield observers
        watchers.cancel_scope.cancel()


async def until(acked: list[tuple[int, int]], count: int) -> None:
    with trio.fail_after(60):
        while len(acked) < count:  # noqa: ASYNC110 - another task's progress, polled
            await trio.sleep(0.01)


async def test_one_event_per_committed_change_across_a_broker_restart_and_relay_crashes(
    nursery: trio.Nursery,
    settings: Settings,
    rabbit: RabbitServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = replace(settings, events_url=rabbit.url(), relay_poll_s=0.2)
    crashing = PublishThenCrash(settings)
    monkeypatch.setattr(
        "chatd.service.Relay", functools.partial(Relay, publisher_factory=lambda _: crashing)
    )
    store = open_store(settings.database_url, pool_size=4)
    async with watching(store, settings) as observers:
        api, _ = await start_server(nursery, settings)
        ann, bob = await api.signup(), await api.signup()
        room = (await api.create_room(ann))["id"]
        acked: list[tuple[int, int]] = []
        await chatter(api, ann, room, 30, acked)

        # The broker restarts while people keep talking: what commits meanwhile stays in
        # the outbox, and the relay publishes it when the broker is back.
        async with trio.open_nursery() as during:
            during.start_soon(trio.to_thread.run_sync, rabbit.restart)
            during.start_soon(chatter, api, ann, room, 60, acked)

        joined = await api.http.post(f"/api/v1/rooms/{room}/join", headers=bob.headers)
        assert joined.status_code == 200, joined.text
        await chatter(api, bob, room, 30, acked)
        # A change that fails commits nothing, so it is no event.
        refused = await api.http.delete(
            f"/api/v1/rooms/{room}/messages/{acked[0][1]}", headers=bob.headers
        )
        assert refused.status_code == 403, refused.text
        second = (await api.create_room(bob, name="second"))["id"]
        await chatter(api, bob, second, 20, acked)

        figures = await observers.check(store, acked)
        assert len(acked) == 140
        types = Counter(e.type for e in observers.consumed)
        assert types == {"room.created": 2, "member.joined": 1, "message.created": 140}, types
        # The relay did crash after the broker had batches: the broker delivered copies...
        assert crashing.crashed, "no batch crashed between publish and mark"
        raw = Counter(observers.raw_ids)
        assert all(raw[i] >= 2 for i in crashing.crashed), "a crashed batch was not published"
        assert figures["copies at the broker"] > 0
        # ... and the consumer saw none of them (check() asserted each id once, in order).
    await store.aclose()  # after the consumer stopped: it reads the store


async def test_one_event_per_committed_change_when_a_publishing_instance_is_killed(
    nursery: trio.Nursery,
    postgres_database: str,
    redis: RedisServer,
    events_url: str,
) -> None:
    """Two `chatd serve` processes, each with a relay (one publishes at a time); the one
    that takes the messages, and so publishes them, is killed (-9) mid-flood, then
    the other. Whatever a kill interrupted is published again by the survivor."""
    cluster = Cluster(
        nursery,
        postgres_database,
        redis.url,
        settings={"CHATD_EVENTS_URL": events_url, "CHATD_RELAY_POLL_S": "0.2"},
    )
    settings = Settings(database_url=postgres_database, events_url=events_url, jwt_secret="x" * 40)
    store = open_store(postgres_database, pool_size=4)
    async with watching(store, settings) as observers:
        a, b = await cluster.start(), await cluster.start()
        ann = await a.api.signup()
        room = (await a.api.create_room(ann))["id"]
        acked: list[tuple[int, int]] = []

        async def flood_then_kill(target: Any, count: int) -> None:
            async with trio.open_nursery() as flood:
                flood.start_soon(chatter, target.api, ann, room, 100_000, acked)
                await until(acked, count)
                target.kill()

        await flood_then_kill(a, 150)
        await chatter(b.api, ann, room, 50, acked)
        c = await cluster.start()
        await flood_then_kill(b, len(acked) + 150)
        await chatter(c.api, ann, room, 50, acked)

        figures = await observers.check(store, acked)
        print(f"killed twice while publishing: {figures}")  # copies: if a kill fell in the window
    await store.aclose()  # after the consumer stopped: it reads the store
