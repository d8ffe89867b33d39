"""The writer commits everything it accepted, in batches, even while it is being flushed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import trio

from chatd.bus.local import LocalBus
from chatd.hub.member import Member
from chatd.hub.writer import Writer
from chatd.metrics import Metrics
from chatd.model import Draft, RoomId
from chatd.store import Store, open_store

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def sqlite_store(sqlite_database: str) -> AsyncIterator[Store]:
    store = open_store(sqlite_database)
    try:
        yield store
    finally:
        await store.aclose()


async def test_a_flush_mid_batch_commits_what_was_queued(
    nursery: trio.Nursery, sqlite_store: Store
) -> None:
    owner = (await sqlite_store.create_user("owner@x.io", "h")).id
    room = (await sqlite_store.create_room(owner, "r", "public", NOW)).id
    published: list[int] = []
    bus = LocalBus(lambda event: published.append(getattr(event, "id", 0)))
    await bus.subscribe(room)
    writer = Writer(sqlite_store, bus, Metrics(), queue_size=16, batch_max=4)
    await nursery.start(writer.run)
    sender = Member(RoomId(room), owner, outbox_size=16)
    for i in range(7):  # a batch of 4 commits while 3 wait: fewer than batch_max
        await writer.submit(Draft(RoomId(room), owner, f"m{i}", f"c{i}"), sender)
    with trio.fail_after(10):
        await writer.flush()
    assert published == list(range(1, 8))
    stored = await sqlite_store.messages_after(RoomId(room), 0, 100)
    assert [m.text for m in stored] == [f"m{i}" for i in range(7)]
    assert sender.pending == []  # no error frame: every send was committed
