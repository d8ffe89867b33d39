"""PostgreSQL's numbering under concurrency: many writers and two relays at once, and
transactions that commit out of the order they wrote in."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import trio

from chatd.events.event import Event
from chatd.model import Draft, RoomId, UserId
from chatd.store import Store, open_store
from chatd.store.outbox import record_event
from chatd.store.sqlbase import SqlCursor

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def stores(postgres_database: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database: two instances of chatd."""
    first, second = (
        open_store(postgres_database, pool_size=4),
        open_store(postgres_database, pool_size=4),
    )
    try:
        yield first, second
    finally:
        await first.aclose()
        await second.aclose()


class Broker:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, events: list[Event]) -> None:
        time.sleep(0.002)  # a broker's round trip: the window for another relay to barge in
        self.events.extend(events)


async def test_two_relays_at_once_never_publish_an_event_twice(
    stores: tuple[Store, Store],
) -> None:
    ann = (await stores[0].create_user("ann@example.com", "$2b$hash")).id
    rooms = [(await stores[0].create_room(ann, f"r{i}", "public", NOW)).id for i in range(4)]
    broker = Broker()
    writing = 0

    async def write(store: Store, room: RoomId) -> None:
        nonlocal writing
        for batch in range(25):
            drafts = [Draft(room, ann, f"{room}:{batch}:{i}", None) for i in range(8)]
            await store.append(drafts, NOW)
        writing -= 1

    async def relay(store: Store) -> None:
        while writing or await store.publish_events(broker.publish, 7, NOW):
            await store.publish_events(broker.publish, 7, NOW)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            writing = len(rooms)
            for index, room in enumerate(rooms):
                nursery.start_soon(write, stores[index % 2], room)
            nursery.start_soon(relay, stores[0])
            nursery.start_soon(relay, stores[1])
        # Both relays saw nothing left; one last look drains anything in between.
        while await stores[0].publish_events(broker.publish, 500, NOW):
            pass

    total = len(rooms) + len(rooms) * 25 * 8
    assert [e.id for e in broker.events] == list(range(1, total + 1))
    texts = [json.loads(e.data)["text"] for e in broker.events if e.type == "message.created"]
    assert len(texts) == len(set(texts)) == total - len(rooms)
    # Within a room, the stream keeps the room's own order.
    for room in rooms:
        ids = [json.loads(e.data)["id"] for e in broker.events if e.room_id == room][1:]
        assert ids == sorted(ids) == list(range(1, 201))
    assert await stores[1].events_after(0, total + 1) == broker.events


def connect(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(url)


def translate(sql: str) -> str:
    return sql.replace("?", "%s")


async def test_a_transaction_still_running_holds_numbering_back_and_is_not_skipped(
    postgres_database: str, stores: tuple[Store, Store]
) -> None:
    store = stores[0]
    ann = (await store.create_user("ann@example.com", "$2b$hash")).id
    broker = Broker()

    # A long transaction begins writing (it has a transaction id) before the room below
    # commits, and writes its own event after that room's: a higher row_id, committed
    # later, but the earlier transaction.
    long = await trio.to_thread.run_sync(connect, postgres_database)
    try:
        cur = long.cursor()
        await trio.to_thread.run_sync(cur.execute, "SELECT pg_current_xact_id()")
        room = (await store.create_room(ann, "lobby", "public", NOW)).id
        # Committed, but behind a transaction still running: not numbered yet, not skipped.
        assert await store.publish_events(broker.publish, 500, NOW) == 0
        assert (await store.outbox_backlog())[0] == 1

        def write_and_commit() -> None:
            record_event(
                SqlCursor(cur, translate),
                "room.updated",
                room_id=room,
                actor_id=UserId(ann),
                data={"from": "the long transaction"},
                now=NOW,
            )
            long.commit()

        await trio.to_thread.run_sync(write_and_commit)
    finally:
        await trio.to_thread.run_sync(long.close)

    assert await store.publish_events(broker.publish, 500, NOW) == 2
    # In transaction order: the one that began writing first is first.
    assert [(e.id, e.type) for e in broker.events] == [(1, "room.updated"), (2, "room.created")]
    assert await store.events_after(0, 10) == broker.events


async def test_a_transaction_that_only_reads_holds_nothing_back(
    postgres_database: str, stores: tuple[Store, Store]
) -> None:
    store = stores[0]
    ann = (await store.create_user("ann@example.com", "$2b$hash")).id
    reader = await trio.to_thread.run_sync(connect, postgres_database)
    try:
        await trio.to_thread.run_sync(reader.execute, "SELECT count(*) FROM outbox")
        await store.create_room(ann, "lobby", "public", NOW)
        assert await store.publish_events(Broker().publish, 500, NOW) == 1
    finally:
        await trio.to_thread.run_sync(reader.close)
