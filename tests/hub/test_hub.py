"""The hub applies room events from the bus, and keeps a failing room to itself."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import trio
import trio.testing

from chatd.bus.local import LocalBus
from chatd.closecodes import REMOVED_FROM_ROOM, ROOM_FAILED, ROOM_GONE
from chatd.hub.frames import Outgoing
from chatd.hub.hub import Hub
from chatd.hub.member import Member
from chatd.hub.presence import LocalPresence, Presence
from chatd.hub.writer import Writer
from chatd.metrics import Metrics
from chatd.model import Appended, Draft, Message, RoomChange, RoomId, UserId, Visibility
from chatd.store import Store

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Running:
    hub: Hub
    bus: LocalBus
    store: Store
    metrics: Metrics

    async def room(self, owner: UserId, visibility: Visibility = "public") -> RoomId:
        return (await self.store.create_room(owner, "r", visibility, NOW)).id

    async def user(self, email: str) -> UserId:
        return (await self.store.create_user(email, "h")).id

    async def member(self, room_id: RoomId, user_id: UserId) -> Member:
        member = Member(room_id, user_id, outbox_size=100)
        await self.hub.join(member)
        return member

    async def send(self, room_id: RoomId, user_id: UserId, count: int = 1) -> list[Message]:
        """Commit, then publish: what the writer does."""
        drafts = [Draft(room_id, user_id, f"m{i}", None) for i in range(count)]
        outcomes = await self.store.append(drafts, NOW)
        messages = [o.message for o in outcomes if isinstance(o, Appended)]
        for message in messages:
            self.bus.publish_nowait(message)
        return messages


@pytest.fixture
async def running(nursery: trio.Nursery, sqlite_store: Store) -> AsyncIterator[Running]:
    metrics = Metrics()
    bus = LocalBus()
    presence = Presence(
        LocalPresence(), ttl_s=30, announce=lambda room_id: None, clock=trio.current_time
    )
    hub = Hub(sqlite_store, bus, presence, metrics, room_inbox_size=64)
    await nursery.start(bus.run, hub.dispatch_nowait, hub.resync_all)
    await nursery.start(hub.run)
    await nursery.start(presence.run, hub.presence_changed)
    yield Running(hub, bus, sqlite_store, metrics)


async def frames_until_closed(member: Member) -> list[Outgoing]:
    """Every frame the member was given, once its connection has been asked to close."""
    frames = []
    with trio.fail_after(10):
        while True:
            try:
                frames.append(await member.outbox.receive())
            except trio.EndOfChannel:
                return frames


async def message_ids(member: Member, count: int) -> list[int | None]:
    with trio.fail_after(10):
        frames = [await member.outbox.receive() for _ in range(count)]
    return [frame.message_id for frame in frames if frame.message_id is not None]


async def next_message_id(member: Member) -> int:
    with trio.fail_after(10):
        while (frame := await member.outbox.receive()).message_id is None:
            pass  # presence frames
    return frame.message_id


def corrupt(sqlite_database: str, room_id: RoomId, message_id: int) -> None:
    """Damage one stored message, as a bad migration or a disk fault might."""
    path = sqlite_database.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE messages SET created_at = 'not a time' WHERE room_id = ? AND seq = ?",
            (room_id, message_id),
        )


async def test_an_unexpected_error_closes_one_room_and_the_others_keep_delivering(
    running: Running, sqlite_database: str
) -> None:
    ann = await running.user("ann@x.io")
    broken, healthy = await running.room(ann), await running.room(ann)
    in_broken, in_healthy = await running.member(broken, ann), await running.member(healthy, ann)
    committed = await running.store.append(
        [Draft(broken, ann, f"m{i}", None) for i in range(3)], NOW
    )
    corrupt(sqlite_database, broken, 2)
    # Only the last one reaches the room: it fills the gap from the store, and reading
    # the damaged row raises an error that no code path foresaw.
    last = committed[-1]
    assert isinstance(last, Appended)
    running.bus.publish_nowait(last.message)

    await frames_until_closed(in_broken)
    assert in_broken.close_code == ROOM_FAILED  # its client resumes with ?since=
    assert running.metrics.registry.get_sample_value("chatd_room_failures_total") == 1
    running.hub.leave(in_broken)

    # The instance did not exit: the other room delivers as before.
    [sent] = await running.send(healthy, ann)
    assert await next_message_id(in_healthy) == sent.id
    # And the failed room started over: a new connection gets what comes next.
    again = await running.member(broken, ann)
    [after] = await running.send(broken, ann)
    assert await next_message_id(again) == after.id == 4


async def test_a_deleted_room_closes_every_socket_in_it(running: Running) -> None:
    ann, bob = await running.user("ann@x.io"), await running.user("bob@x.io")
    room, other = await running.room(ann), await running.room(ann)
    sockets = [await running.member(room, ann), await running.member(room, bob)]
    elsewhere = await running.member(other, bob)
    await running.store.delete_room(room)
    running.bus.publish_nowait(RoomChange(room, "deleted"))  # what DELETE /rooms/{id} does
    for member in sockets:
        await frames_until_closed(member)
        assert member.close_code == ROOM_GONE
    assert elsewhere.close_code is None


async def test_a_removed_member_of_a_private_room_is_closed_and_nobody_else(
    running: Running,
) -> None:
    ann, bob = await running.user("ann@x.io"), await running.user("bob@x.io")
    room = await running.room(ann, "private")
    await running.store.add_member(room, ann, NOW)
    await running.store.add_member(room, bob, NOW)
    owner, removed = await running.member(room, ann), await running.member(room, bob)
    await running.store.remove_member(room, bob)
    running.bus.publish_nowait(RoomChange(room, "member_removed", bob))
    await frames_until_closed(removed)
    assert removed.close_code == REMOVED_FROM_ROOM
    [sent] = await running.send(room, ann)
    assert await next_message_id(owner) == sent.id
    assert owner.close_code is None


async def test_a_room_turned_private_closes_the_sockets_of_non_members(running: Running) -> None:
    ann, bob = await running.user("ann@x.io"), await running.user("bob@x.io")
    room = await running.room(ann)
    await running.store.add_member(room, ann, NOW)
    member, visitor = await running.member(room, ann), await running.member(room, bob)
    await running.store.update_room(room, None, "private")
    running.bus.publish_nowait(RoomChange(room, "visibility_changed"))
    await frames_until_closed(visitor)
    assert visitor.close_code == REMOVED_FROM_ROOM
    assert member.close_code is None


async def test_a_deletion_missed_while_the_bus_was_away_is_found_on_resync(
    running: Running,
) -> None:
    # Issue 9, defect 1: the resync after a Redis reconnect read the deleted room's
    # last id, and its NotFound escaped the room task and stopped the instance.
    ann = await running.user("ann@x.io")
    room, other = await running.room(ann), await running.room(ann)
    gone, staying = await running.member(room, ann), await running.member(other, ann)
    await running.store.delete_room(room)  # its event never arrived
    running.hub.resync_all()  # what the bus does when it reconnects
    await frames_until_closed(gone)
    assert gone.close_code == ROOM_GONE
    assert running.metrics.registry.get_sample_value("chatd_room_failures_total") == 0
    [sent] = await running.send(other, ann)
    assert await next_message_id(staying) == sent.id


async def test_a_late_joiner_of_a_deleted_room_is_closed_too(running: Running) -> None:
    ann = await running.user("ann@x.io")
    room = await running.room(ann)
    first = await running.member(room, ann)
    await running.store.delete_room(room)
    running.bus.publish_nowait(RoomChange(room, "deleted"))
    await frames_until_closed(first)
    # It passed its access check before the deletion, and joins after it.
    late = await running.member(room, ann)
    assert late.close_code == ROOM_GONE


async def test_a_send_into_a_room_deleted_unannounced_closes_its_sockets(
    nursery: trio.Nursery, running: Running
) -> None:
    # The instance that deleted the room died before publishing it: the first send that
    # finds the room gone says so on the bus, and every socket in it closes.
    writer = Writer(running.store, running.bus, running.metrics, queue_size=16, batch_max=4)
    await nursery.start(writer.run)
    ann, bob = await running.user("ann@x.io"), await running.user("bob@x.io")
    room = await running.room(ann)
    sender, listener = await running.member(room, ann), await running.member(room, bob)
    await running.store.delete_room(room)
    await writer.submit(Draft(room, ann, "anyone here?", "c1"), sender)
    told = await frames_until_closed(sender)
    assert b'"code":"not_found"' in told[-1].payload
    assert b'"client_id":"c1"' in told[-1].payload
    await frames_until_closed(listener)
    assert sender.close_code == listener.close_code == ROOM_GONE
