"""The store's side of notifications, on both databases: who may be notified, each event
once, and the consumer's lease that lets one replica write at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chatd.model import MessageId, NotificationKind, RoomId, UserId
from chatd.store import Store
from chatd.store.notifications import LeaseLost, NotificationDraft

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LEASE_S = 15.0


def draft(
    user_id: UserId, room_id: RoomId, event_id: int, kind: NotificationKind = "mention"
) -> NotificationDraft:
    return NotificationDraft(
        user_id=user_id,
        kind=kind,
        room_id=room_id,
        message_id=MessageId(event_id),
        sender_id=UserId(1),
        event_id=event_id,
        excerpt=f"event {event_id}",
    )


async def people(store: Store, count: int) -> list[UserId]:
    return [
        (await store.create_user(f"p{i}@example.com", "not-a-real-hash")).id for i in range(count)
    ]


async def test_notifications_go_to_people_who_may_still_read_the_room(store: Store) -> None:
    ann, bob, cat = await people(store, 3)
    public = await store.create_room(ann, "lobby", "public", NOW)
    private = await store.create_room(ann, "secret", "private", NOW)
    await store.add_member(private.id, bob, NOW)
    assert await store.claim_consumer("n", "me", LEASE_S, NOW) == 0

    made = await store.record_notifications(
        "n",
        "me",
        7,
        [
            draft(bob, private.id, 5),  # a member of the private room
            draft(cat, private.id, 5),  # not a member (left, or removed, since)
            draft(cat, public.id, 6),  # anyone may read a public room
            draft(bob, RoomId(999), 7),  # a room deleted since
        ],
        LEASE_S,
        NOW,
    )
    assert [(n.user_id, n.room_id, n.event_id) for n in made] == [
        (bob, private.id, 5),
        (cat, public.id, 6),
    ]
    assert all(n.id > 0 and n.read_at is None for n in made)
    assert await store.consumer_position("n") == 7
    assert [
        n.event_id
        for n in await store.notifications_for(bob, unread_only=False, before=None, limit=10)
    ] == [5]


async def test_an_event_recorded_again_makes_nothing_new(store: Store) -> None:
    ann, bob = await people(store, 2)
    room = await store.create_room(ann, "lobby", "public", NOW)
    await store.claim_consumer("n", "me", LEASE_S, NOW)
    first = await store.record_notifications("n", "me", 3, [draft(bob, room.id, 3)], LEASE_S, NOW)
    again = await store.record_notifications(
        "n", "me", 3, [draft(bob, room.id, 3), draft(bob, room.id, 3, "dm")], LEASE_S, NOW
    )
    assert len(first) == 1
    assert [n.kind for n in again] == ["dm"]  # unique per user, event and kind
    assert await store.unread_notifications(bob) == 2


async def test_one_holder_at_a_time_and_a_stale_one_writes_nothing(store: Store) -> None:
    ann, bob = await people(store, 2)
    room = await store.create_room(ann, "lobby", "public", NOW)
    assert await store.claim_consumer("n", "a", LEASE_S, NOW) == 0
    assert await store.claim_consumer("n", "b", LEASE_S, NOW + timedelta(seconds=5)) is None
    await store.record_notifications("n", "a", 4, [draft(bob, room.id, 4)], LEASE_S, NOW)

    # a stalls past its lease; b takes over from a's position.
    later = NOW + timedelta(seconds=LEASE_S + 1)
    assert await store.claim_consumer("n", "b", LEASE_S, later) == 4
    with pytest.raises(LeaseLost):
        await store.record_notifications("n", "a", 9, [draft(bob, room.id, 9)], LEASE_S, later)
    assert await store.consumer_position("n") == 4
    assert await store.unread_notifications(bob) == 1

    await store.release_consumer("n", "b")  # a clean stop: a takes over at once
    assert await store.claim_consumer("n", "a", LEASE_S, later) == 4


async def test_marking_read_touches_only_the_users_own(store: Store) -> None:
    ann, bob, cat = await people(store, 3)
    room = await store.create_room(ann, "lobby", "public", NOW)
    await store.claim_consumer("n", "me", LEASE_S, NOW)
    made = await store.record_notifications(
        "n",
        "me",
        4,
        [
            draft(bob, room.id, 1),
            draft(bob, room.id, 2),
            draft(cat, room.id, 3),
            draft(bob, room.id, 4),
        ],
        LEASE_S,
        NOW,
    )
    bob_ids = [n.id for n in made if n.user_id == bob]
    cat_id = next(n.id for n in made if n.user_id == cat)
    assert await store.mark_notifications_read(cat, ids=bob_ids, now=NOW) == 1
    assert await store.mark_notifications_read(bob, ids=[bob_ids[0], cat_id], now=NOW) == 2
    assert await store.mark_notifications_read(bob, up_to=bob_ids[1], now=NOW) == 1
    assert await store.unread_notifications(cat) == 1
    unread = await store.notifications_for(bob, unread_only=True, before=None, limit=10)
    assert [n.id for n in unread] == [bob_ids[2]]
