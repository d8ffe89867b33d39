"""follow(): every event after a given id, once each, in id order, whatever the broker
does: replay from the store, then the broker; gaps filled, copies skipped; and without
a broker, the store alone."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import trio

from chatd.config import Settings
from chatd.events.event import Event
from chatd.events.feed import Feed, follow, topic_matches
from chatd.events.rabbitmq import RabbitPublisher
from chatd.events.relay import Relay
from chatd.events.transport import NoBroker, PublishFailed, open_subscription
from chatd.metrics import Metrics
from chatd.model import RoomId, UserId
from chatd.store import Store

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
_owners = itertools.count()


def settings_for(events_url: str, database_url: str = "sqlite:///unused.db") -> Settings:
    return Settings(
        database_url=database_url,
        events_url=events_url,
        jwt_secret="x" * 40,
        relay_poll_s=0.2,
    )


async def new_rooms(store: Store, count: int, owner: UserId | None = None) -> list[RoomId]:
    """`count` changes, each one room.created event."""
    if owner is None:
        owner = (await store.create_user(f"owner{next(_owners)}@example.com", "$2b$x")).id
    return [(await store.create_room(owner, f"r{i}", "public", NOW)).id for i in range(count)]


async def publish(store: Store, publish: Callable[[list[Event]], None]) -> int:
    """Publish every event the store has not published yet; how many."""
    total = 0
    while published := await store.publish_events(publish, 500, NOW):
        total += published
    return total


async def take(feed: Feed, count: int) -> list[Event]:
    with trio.fail_after(20):
        return [await anext(feed) for _ in range(count)]


async def test_a_feed_replays_from_any_id_then_follows_the_broker(
    store: Store, events_url: str
) -> None:
    settings = settings_for(events_url)
    rabbit = RabbitPublisher(events_url, settings.events_exchange)
    await new_rooms(store, 5)
    assert await publish(store, rabbit.publish) == 5
    async with follow(store, settings, after=2) as feed, follow(store, settings, 0) as whole:
        assert [e.id for e in await take(feed, 3)] == [3, 4, 5]  # from the store
        await new_rooms(store, 3)
        await publish(store, rabbit.publish)
        assert [e.id for e in await take(feed, 3)] == [6, 7, 8]  # from the broker
        assert [e.id for e in await take(whole, 8)] == list(range(1, 9))
        assert feed.position == 8
    stored = await store.events_after(0, 100)
    assert [e.type for e in stored] == ["room.created"] * 8
    rabbit.close()


async def test_a_gap_the_broker_never_delivered_is_filled_from_the_store(
    store: Store, events_url: str
) -> None:
    """Events published while a consumer's queue did not exist (a tail's queue across a
    broker restart) reach it from the store, before the broker's next ones."""
    settings = settings_for(events_url)
    rabbit = RabbitPublisher(events_url, settings.events_exchange)
    await new_rooms(store, 2)
    await publish(store, rabbit.publish)
    async with follow(store, settings, after=0) as feed:
        assert [e.id for e in await take(feed, 2)] == [1, 2]
        await new_rooms(store, 3)
        await publish(store, NoBroker().publish)  # 3, 4, 5: numbered, never in the broker
        await new_rooms(store, 2)
        await publish(store, rabbit.publish)  # 6, 7
        assert [e.id for e in await take(feed, 5)] == [3, 4, 5, 6, 7]
    rabbit.close()


async def test_events_the_broker_never_delivers_come_from_the_store_when_it_is_quiet(
    store: Store, events_url: str
) -> None:
    """No later event needs to reveal the gap: a batch published before the consumer
    subscribed and committed after it caught up, say, or a relay without this broker."""
    settings = settings_for(events_url)
    async with follow(store, settings, after=0) as feed:
        with trio.move_on_after(0.5):
            await anext(feed)  # subscribed and caught up: nothing yet
        await new_rooms(store, 2)
        await publish(store, NoBroker().publish)
        with trio.fail_after(settings.relay_poll_s * 10):
            assert [e.id for e in await take(feed, 2)] == [1, 2]


async def test_copies_the_broker_delivers_again_are_skipped(store: Store, events_url: str) -> None:
    """A relay that crashes after the broker took a batch and before marking it
    publishes the same events again, under the same ids: the consumer sees each once."""
    settings = settings_for(events_url)
    rabbit = RabbitPublisher(events_url, settings.events_exchange)
    raw_ids: list[int] = []

    def publish_then_crash(events: list[Event]) -> None:
        rabbit.publish(events)
        raise PublishFailed("the relay died before marking the batch")

    async with (
        open_subscription(settings, ["#"]) as raw,
        follow(store, settings, after=0) as feed,
    ):
        await new_rooms(store, 3)
        with pytest.raises(PublishFailed):
            await store.publish_events(publish_then_crash, 500, NOW)
        assert await publish(store, rabbit.publish) == 3  # the same three, again
        await new_rooms(store, 1)
        await publish(store, rabbit.publish)
        assert [e.id for e in await take(feed, 4)] == [1, 2, 3, 4]
        with trio.fail_after(10):
            raw_ids = [(await raw.receive()).event.id for _ in range(7)]
        with trio.move_on_after(0.3):
            await anext(feed)
            raise AssertionError("a copy came through")
    assert raw_ids == [1, 2, 3, 1, 2, 3, 4]
    rabbit.close()


async def test_binding_keys_select_the_same_events_from_the_store_and_the_broker(
    store: Store, events_url: str
) -> None:
    settings = settings_for(events_url)
    rabbit = RabbitPublisher(events_url, settings.events_exchange)
    owner = (await store.create_user("keys@example.com", "$2b$x")).id
    ours, other = await new_rooms(store, 2, owner)  # events 1, 2
    member = (await store.create_user("member@example.com", "$2b$x")).id
    await store.add_member(other, member, NOW)  # 3: other room
    await store.add_member(ours, member, NOW)  # 4: ours
    await publish(store, rabbit.publish)
    async with follow(store, settings, after=0, binding_keys=[f"room.{ours}.#"]) as feed:
        replayed = await take(feed, 2)
        await store.remove_member(other, member)  # 5: other room, via the store only
        await publish(store, NoBroker().publish)
        await store.remove_member(ours, member)  # 6: ours, only in the store
        await publish(store, NoBroker().publish)
        await store.update_room(other, "renamed", None)  # 7
        await store.update_room(ours, "renamed", None)  # 8
        await publish(store, rabbit.publish)
        live = await take(feed, 2)
    assert [(e.id, e.room_id) for e in replayed] == [(1, ours), (4, ours)]
    assert [(e.id, e.type) for e in live] == [(6, "member.left"), (8, "room.updated")]
    rabbit.close()


async def test_without_a_broker_the_feed_follows_the_store(store: Store) -> None:
    settings = settings_for("")
    relay = Relay(store, settings, Metrics())
    store.on_events_committed(relay.wake)
    async with trio.open_nursery() as nursery:
        await nursery.start(relay.run)
        await new_rooms(store, 2)
        async with (
            follow(store, settings, after=0, relay=relay) as woken,
            follow(store, settings, after=1) as polling,  # another process: it polls
        ):
            assert [e.id for e in await take(woken, 2)] == [1, 2]
            assert [e.id for e in await take(polling, 1)] == [2]
            await new_rooms(store, 1)
            with trio.fail_after(1):  # well before a poll of the store: the relay woke it
                assert [e.id for e in await take(woken, 1)] == [3]
            assert [e.id for e in await take(polling, 1)] == [3]
        nursery.cancel_scope.cancel()
    store.on_events_committed(None)


async def test_a_feed_started_while_the_broker_is_away_replays_the_store(
    store: Store, events_url: str
) -> None:
    settings = settings_for(events_url)
    await new_rooms(store, 2)
    await publish(store, RabbitPublisher(events_url, settings.events_exchange).publish)
    nowhere = replace(settings, events_url="amqp://guest:guest@127.0.0.1:1/%2F")
    async with follow(store, nowhere, after=0) as feed:
        assert [e.id for e in await take(feed, 2)] == [1, 2]
        with trio.move_on_after(1):
            await anext(feed)
            raise AssertionError("an event that was not published")


def test_topic_matching_is_amqps() -> None:
    assert topic_matches("#", "room.7.message.created")
    assert topic_matches("room.7.#", "room.7.message.created")
    assert topic_matches("room.*.message.created", "room.7.message.created")
    assert topic_matches("room.7.message.#", "room.7.message")
    assert topic_matches("#.created", "room.7.message.created")
    assert not topic_matches("room.7.#", "room.70.message.created")
    assert not topic_matches("room.*.created", "room.7.message.created")
    assert not topic_matches("global.#", "room.7.room.created")
