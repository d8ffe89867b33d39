"""The writer commits everything it accepted, in batches, even while it is being flushed."""

from __future__ import annotations

from datetime import UTC, datetime

import trio

from chatd.bus.local import LocalBus
from chatd.hub.member import Member
from chatd.hub.writer import Writer
from chatd.metrics import Metrics
from chatd.model import Draft, RoomId
from chatd.store import Store

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def test_a_flush_mid_batch_commits_what_was_queued(
    nursery: trio.Nursery, sqlite_store: Store
) -> None:
    owner = (await sqlite_store.create_user("owner@x.io", "h")).id
    room = (await sqlite_store.create_room(owner, "r", "public", NOW)).id
    published: list[int] = []
    bus = LocalBus()
    await nursery.start(bus.run, lambda event: published.append(getattr(event, "id", 0)))
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


async def test_lanes_commit_rooms_side_by_side_each_in_order(
    nursery: trio.Nursery, store: Store
) -> None:
    owner = (await store.create_user("lanes@x.io", "h")).id
    rooms = [RoomId((await store.create_room(owner, f"r{i}", "public", NOW)).id) for i in range(4)]
    published: list[tuple[int, int]] = []
    bus = LocalBus()
    await nursery.start(
        bus.run, lambda event: published.append((event.room_id, getattr(event, "id", 0)))
    )
    for room in rooms:
        await bus.subscribe(room)
    writer = Writer(store, bus, Metrics(), queue_size=8, batch_max=3, lanes=2)
    await nursery.start(writer.run)
    sender = Member(rooms[0], owner, outbox_size=64)
    for i in range(10):
        for room in rooms:
            await writer.submit(Draft(room, owner, f"{room}-{i}", f"{room}-{i}"), sender)
    with trio.fail_after(10):
        await writer.flush()
    for room in rooms:  # every room: all ten, ids 1..10 in the order they were sent
        assert [m for r, m in published if r == room] == list(range(1, 11))
        stored = await store.messages_after(room, 0, 100)
        assert [m.text for m in stored] == [f"{room}-{i}" for i in range(10)]
    assert sender.pending == []
