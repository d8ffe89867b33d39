"""The relay: publishes what commits, promptly, in order, once; rides out a broker that
fails; and a server with no broker still numbers and keeps the stream."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import trio

from chatd.config import Settings
from chatd.events.event import Event
from chatd.events.relay import Relay
from chatd.events.transport import PublishFailed
from chatd.metrics import Metrics
from chatd.model import Draft
from chatd.store import Store, open_store
from tests.conftest import start_server

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
# Long enough that only a wake-up (a commit in this process) can explain a prompt publish.
NO_POLL = {"relay_poll_s": 60.0}


class FlakyBroker:
    """A broker that refuses the first `failures` batches, then takes them all."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.refused: list[list[int]] = []
        self.refusing = threading.Event()  # set at the first refusal (in the relay's thread)
        self.events: list[Event] = []

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return  # a keep-alive
        if self.failures:
            self.failures -= 1
            self.refused.append([e.id for e in events])
            self.refusing.set()
            raise PublishFailed("the broker is away")
        self.events.extend(events)

    def close(self) -> None:
        pass

    def health(self) -> str:
        return "test"


def broker_of(broker: FlakyBroker) -> Callable[[Settings], FlakyBroker]:
    return lambda settings: broker


async def test_the_relay_publishes_each_commit_promptly_and_in_order(
    nursery: trio.Nursery, store: Store, settings_with: Callable[..., Settings]
) -> None:
    broker, metrics = FlakyBroker(), Metrics()
    relay = Relay(store, settings_with(**NO_POLL), metrics, broker_of(broker))
    store.on_events_committed(relay.wake)
    await nursery.start(relay.run)

    ann = (await store.create_user("ann@example.com", "$2b$hash")).id
    room = (await store.create_room(ann, "lobby", "public", NOW)).id
    with trio.fail_after(10):
        assert await relay.wait_published(0) == 1
        await store.append([Draft(room, ann, f"m{i}", None) for i in range(3)], NOW)
        assert await relay.wait_published(1) == 4
    assert [(e.id, e.type) for e in broker.events] == [
        (1, "room.created"),
        (2, "message.created"),
        (3, "message.created"),
        (4, "message.created"),
    ]
    assert metrics.registry.get_sample_value("chatd_events_published_total") == 4


async def test_a_failing_broker_gets_the_same_events_again_until_it_takes_them(
    nursery: trio.Nursery, store: Store, settings_with: Callable[..., Settings]
) -> None:
    broker, metrics = FlakyBroker(failures=2), Metrics()
    relay = Relay(store, settings_with(**NO_POLL), metrics, broker_of(broker))
    store.on_events_committed(relay.wake)
    await nursery.start(relay.run)

    ann = (await store.create_user("ann@example.com", "$2b$hash")).id
    room = (await store.create_room(ann, "lobby", "public", NOW)).id
    await store.append([Draft(room, ann, "hello", None)], NOW)
    with trio.fail_after(10):
        while relay.last_event_id < 2:
            await relay.wait_published(relay.last_event_id)
    # Refused twice, then taken: the same events under the same ids each time, once each.
    assert broker.refused[0][0] == 1
    assert all(ids == broker.refused[0] or ids[0] == 1 for ids in broker.refused)
    assert [e.id for e in broker.events] == [1, 2]
    assert [e.type for e in broker.events] == ["room.created", "message.created"]
    assert metrics.registry.get_sample_value("chatd_relay_errors_total") == 2
    assert await store.events_after(0, 10) == broker.events


def connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(url)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_events_held_back_by_a_long_transaction_go_out_soon_after_it_ends(
    database_url: str, settings_with: Callable[..., Settings]
) -> None:
    store = open_store(database_url, pool_size=4)
    broker = FlakyBroker()
    relay = Relay(store, settings_with(**NO_POLL), Metrics(), broker_of(broker))
    store.on_events_committed(relay.wake)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(relay.run)
            ann = (await store.create_user("ann@example.com", "$2b$hash")).id
            # A transaction elsewhere on the server (it has a transaction id, and writes
            # no event) is running when the room commits: the room's event waits for it.
            other = await trio.to_thread.run_sync(connect, database_url)
            try:
                await trio.to_thread.run_sync(other.execute, "SELECT pg_current_xact_id()")
                await store.create_room(ann, "lobby", "public", NOW)
                await trio.sleep(0.5)  # past the relay's first looks after the commit woke it
                assert relay.last_event_id == 0
                await trio.to_thread.run_sync(other.commit)
            finally:
                await trio.to_thread.run_sync(other.close)
            # Nothing wakes the relay now and it polls once a minute: it looks again soon
            # by itself.
            with trio.fail_after(5):
                assert await relay.wait_published(0) == 1
            nursery.cancel_scope.cancel()
    finally:
        await store.aclose()
    assert [e.type for e in broker.events] == ["room.created"]


async def test_the_backlog_shows_what_waits_while_the_broker_is_away(
    nursery: trio.Nursery, store: Store, settings_with: Callable[..., Settings]
) -> None:
    ann = (await store.create_user("ann@example.com", "$2b$hash")).id
    await store.create_room(ann, "lobby", "public", datetime(2026, 1, 1, tzinfo=UTC))
    broker, metrics = FlakyBroker(failures=1_000), Metrics()
    relay = Relay(store, settings_with(**NO_POLL), metrics, broker_of(broker))
    await nursery.start(relay.run)
    assert await trio.to_thread.run_sync(broker.refusing.wait, 10)
    assert metrics.registry.get_sample_value("chatd_outbox_backlog_events") == 1
    age = metrics.registry.get_sample_value("chatd_outbox_oldest_age_seconds")
    assert age is not None and age > 3600  # written on new year's day
    assert await store.last_event_id() == 0


async def test_a_server_without_a_broker_numbers_and_keeps_the_conversation(
    nursery: trio.Nursery, settings_with: Callable[..., Settings]
) -> None:
    settings = settings_with(**NO_POLL)
    assert settings.events_url == ""
    api, _ = await start_server(nursery, settings)
    ann, bob = await api.signup(), await api.signup()
    room = (await api.create_room(ann, "lobby"))["id"]
    http = api.http
    assert (await http.post(f"/api/v1/rooms/{room}/join", headers=bob.headers)).status_code == 200
    async with api.socket(bob, room) as socket:
        handle = ann.email.split("@")[0]
        await socket.send(f"hi @{handle}", client_id="c1")
        sent = await socket.message()
    path = f"/api/v1/rooms/{room}/messages/{sent['id']}"
    for reply in [
        await http.patch(path, json={"text": "hello"}, headers=bob.headers),
        await http.put(f"{path}/reactions/%F0%9F%91%8D", headers=ann.headers),
        await http.delete(path, headers=ann.headers),
        await http.patch(f"/api/v1/rooms/{room}", json={"name": "porch"}, headers=ann.headers),
        await http.post(f"/api/v1/rooms/{room}/leave", headers=bob.headers),
    ]:
        assert reply.status_code in (200, 204), reply.text

    store = open_store(settings.database_url, pool_size=1)
    try:
        # Read as a consumer in another process would, without a broker: the server's
        # relay polls only once a minute, so only its commits' wake-ups can be this quick.
        with trio.fail_after(10):
            while True:
                events = await store.events_after(0, 100)
                if len(events) >= 8:
                    break
                await trio.sleep(0.02)
    finally:
        await store.aclose()
    assert [(e.id, e.type, e.actor_id) for e in events] == [
        (1, "room.created", ann.id),
        (2, "member.joined", bob.id),
        (3, "message.created", bob.id),
        (4, "message.edited", bob.id),
        (5, "reaction.added", ann.id),
        (6, "message.deleted", ann.id),
        (7, "room.updated", ann.id),
        (8, "member.left", bob.id),
    ]
    assert {e.room_id for e in events} == {room}
    created = json.loads(events[2].data)
    assert created == {**sent, "mentions": [ann.id]}
    assert json.loads(events[6].data)["name"] == "porch"
