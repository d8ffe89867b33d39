"""The room task delivers every committed message once, in id order, whatever the bus does."""

from __future__ import annotations

from datetime import UTC, datetime

import trio
import trio.testing

from chatd.closecodes import SLOW_CONSUMER
from chatd.hub.frames import Outgoing
from chatd.hub.member import Member
from chatd.hub.room import Room
from chatd.metrics import Metrics
from chatd.model import Appended, Draft, Message, RoomId
from chatd.store import Store

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def commit(store: Store, room: RoomId, count: int) -> list[Message]:
    user = (await store.create_user(f"u{trio.current_time()}@x.io", "h")).id
    outcomes = await store.append([Draft(room, user, f"m{i}", None) for i in range(count)], NOW)
    return [o.message for o in outcomes if isinstance(o, Appended)]


async def new_room(store: Store) -> RoomId:
    owner = (await store.create_user("owner@x.io", "h")).id
    return (await store.create_room(owner, "r", "public", NOW)).id


def ids(frames: list[Outgoing]) -> list[int | None]:
    return [frame.message_id for frame in frames]


async def receive(member: Member, count: int) -> list[Outgoing]:
    """The next `count` frames (gap fills go through a worker thread: wait, don't poll)."""
    with trio.fail_after(10):
        return [await member.outbox.receive() for _ in range(count)]


def drain(member: Member) -> list[Outgoing]:
    frames = []
    while True:
        try:
            frames.append(member.outbox.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return frames


async def start_room(
    nursery: trio.Nursery, store: Store, room_id: RoomId, inbox_size: int = 64
) -> tuple[Room, Member]:
    room = Room(room_id, store, Metrics(), inbox_size)
    await nursery.start(room.run)
    member = Member(room_id, room_id, outbox_size=1000)  # type: ignore[arg-type]
    room.members.add(member)
    return room, member


async def test_out_of_order_arrivals_are_delivered_in_order_once(
    nursery: trio.Nursery, sqlite_store: Store
) -> None:
    room_id = await new_room(sqlite_store)
    room, member = await start_room(nursery, sqlite_store, room_id)
    m1, m2, m3 = await commit(sqlite_store, room_id, 3)
    # Another instance's publish (m3) overtakes ours; m1 and m2 arrive late and twice.
    for message in (m3, m1, m2, m1):
        room.offer(message)
    assert ids(await receive(member, 3)) == [1, 2, 3]
    await trio.testing.wait_all_tasks_blocked()
    assert drain(member) == []  # and nothing twice


async def test_an_inbox_overflow_is_filled_from_the_store(
    nursery: trio.Nursery, sqlite_store: Store
) -> None:
    room_id = await new_room(sqlite_store)
    room, member = await start_room(nursery, sqlite_store, room_id, inbox_size=4)
    messages = await commit(sqlite_store, room_id, 30)
    for message in messages:  # no checkpoint in between: the inbox overflows
        room.offer(message)
    assert ids(await receive(member, 30)) == list(range(1, 31))
    await trio.testing.wait_all_tasks_blocked()
    assert drain(member) == []


async def test_a_room_starts_after_what_is_already_committed(
    nursery: trio.Nursery, sqlite_store: Store
) -> None:
    room_id = await new_room(sqlite_store)
    old = await commit(sqlite_store, room_id, 3)
    room, member = await start_room(nursery, sqlite_store, room_id)
    assert room.last_id == 3
    room.offer(old[-1])  # a late duplicate of something committed before the room started
    [new] = await commit(sqlite_store, room_id, 1)
    room.offer(new)
    assert ids(await receive(member, 1)) == [4]


async def test_a_full_outbox_cuts_off_only_that_member(
    nursery: trio.Nursery, sqlite_store: Store
) -> None:
    room_id = await new_room(sqlite_store)
    room, fast = await start_room(nursery, sqlite_store, room_id)
    slow = Member(room_id, room_id, outbox_size=2)  # type: ignore[arg-type]
    room.members.add(slow)
    for message in await commit(sqlite_store, room_id, 5):
        room.offer(message)
    await trio.testing.wait_all_tasks_blocked()
    assert ids(drain(fast)) == [1, 2, 3, 4, 5]
    assert slow.close_code == SLOW_CONSUMER
    assert ids(drain(slow)) == [1, 2]  # what fitted; then the outbox was closed
