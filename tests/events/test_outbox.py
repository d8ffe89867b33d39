"""The outbox's contract, on SQLite and PostgreSQL: every committed change writes exactly
one event, a failed one none; the relay's numbering is gapless, ordered and stable."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatd.errors import ChatdError, Forbidden, MessageDeleted, NotFound
from chatd.events.event import Event
from chatd.model import Appended, Draft, Message, MessageId, RoomId, UserId
from chatd.store import Store

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BATCH = 500


class Broker:
    """What the relay publishes to, as a consumer would see it: the events, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, events: list[Event]) -> None:
        self.events.extend(events)


class BrokerDown(Exception):
    pass


async def publish_all(store: Store, now: datetime = NOW, batch: int = BATCH) -> list[Event]:
    """Publish every committed, unpublished event, `batch` at a time; the ones published,
    in order."""
    broker = Broker()
    while await store.publish_events(broker.publish, batch, now):
        pass
    return broker.events


def stored(outcome: Appended | ChatdError) -> Message:
    assert isinstance(outcome, Appended), outcome
    return outcome.message


def data(event: Event) -> dict[str, Any]:
    return json.loads(event.data)  # type: ignore[no-any-return]


def shape(events: list[Event]) -> list[tuple[str, int | None, int | None]]:
    return [(e.type, e.room_id, e.actor_id) for e in events]


async def users(store: Store, *names: str) -> list[UserId]:
    return [(await store.create_user(f"{name}@example.com", "$2b$hash")).id for name in names]


async def test_messages_and_what_happens_to_them_are_events(store: Store) -> None:
    ann, bob = await users(store, "ann", "bob")
    room = (await store.create_room(ann, "lobby", "public", NOW)).id
    await store.add_member(room, bob, NOW)
    await publish_all(store)

    outcomes = await store.append(
        [
            Draft(
                room, bob, "hello @ann", "c1", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01"
            ),
            Draft(room, ann, "hi", None),
        ],
        NOW,
    )
    created = await publish_all(store)
    assert shape(created) == [("message.created", room, bob), ("message.created", room, ann)]
    first = stored(outcomes[0])
    # The message as clients see it, mentions included, and the trace it was sent in.
    assert data(created[0]) == first.to_json()
    assert data(created[0])["mentions"] == [ann]
    assert created[0].traceparent == "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    assert created[0].routing_key == f"room.{room}.message.created"
    assert created[1].traceparent is None

    # A resend of the same client_id is the original again: nothing new happened.
    await store.append([Draft(room, bob, "hello @ann", "c1")], NOW)
    assert await publish_all(store) == []

    _, edit = await store.edit_message(room, first.id, bob, "hello again", NOW)
    _, added = await store.react(room, first.id, ann, "👍", True, NOW)
    _, removed = await store.react(room, first.id, ann, "👍", False, NOW)
    deleted = await store.delete_message(room, first.id, ann, True, NOW)
    assert added is not None and removed is not None and deleted is not None
    events = await publish_all(store)
    assert shape(events) == [
        ("message.edited", room, bob),
        ("reaction.added", room, ann),
        ("reaction.removed", room, ann),
        ("message.deleted", room, ann),
    ]
    assert [data(e) for e in events] == [m.to_json() for m in (edit, added, removed, deleted)]
    assert data(events[0])["text"] == "hello again"
    assert data(events[1])["emoji"] == "👍" and data(events[1])["count"] == 1

    # Read marks are not events.
    await store.mark_read(room, ann, 2)
    assert await publish_all(store) == []


async def test_room_changes_are_events(store: Store) -> None:
    ann, bob = await users(store, "ann", "bob")
    room = await store.create_room(ann, "lobby", "invite", NOW)
    await store.add_member(room.id, bob, NOW, actor=ann)
    await publish_all(store)

    await store.update_room(room.id, "porch", "public", actor=ann)
    await store.transfer_owner(room.id, bob, actor=ann)
    await store.delete_room(room.id, actor=bob)
    events = await publish_all(store)
    assert shape(events) == [
        ("room.updated", room.id, ann),
        ("room.updated", room.id, ann),
        ("room.deleted", room.id, bob),
    ]
    renamed, transferred, deleted = (data(e) for e in events)
    assert (renamed["name"], renamed["visibility"], renamed["owner_id"]) == ("porch", "public", ann)
    assert (transferred["owner_id"], transferred["previous_owner_id"]) == (bob, ann)
    assert (deleted["id"], deleted["name"], deleted["kind"]) == (room.id, "porch", "room")


async def test_room_creation_is_an_event_with_what_a_consumer_needs(store: Store) -> None:
    (ann,) = await users(store, "ann")
    room = await store.create_room(ann, "lobby", "private", NOW)
    [event] = await publish_all(store)
    assert shape([event]) == [("room.created", room.id, ann)]
    assert event.routing_key == f"room.{room.id}.room.created"
    body = data(event)
    assert {k: body[k] for k in ("id", "name", "kind", "visibility", "owner_id")} == {
        "id": room.id,
        "name": "lobby",
        "kind": "room",
        "visibility": "private",
        "owner_id": ann,
    }
    assert event.occurred_at == NOW


async def test_membership_changes_are_events_that_say_who_acted(store: Store) -> None:
    ann, bob, cat, dan = await users(store, "ann", "bob", "cat", "dan")
    room = (await store.create_room(ann, "lobby", "invite", NOW)).id
    await publish_all(store)

    await store.add_member(room, bob, NOW, actor=ann)  # ann added bob
    await store.add_member(room, cat, NOW)  # cat joined
    await store.add_member(room, cat, NOW)  # already in: nothing happened
    await store.set_role(room, bob, "admin", actor=ann)
    await store.remove_member(room, cat, actor=bob)  # bob removed cat
    await store.remove_member(room, bob)  # bob left
    await store.remove_member(room, bob)  # not in: nothing happened
    await store.invite(room, dan, ann, NOW)  # an invitation is not membership
    await store.accept_invite(room, dan, NOW)
    events = await publish_all(store)
    assert shape(events) == [
        ("member.added", room, ann),
        ("member.joined", room, cat),
        ("member.role_changed", room, ann),
        ("member.removed", room, bob),
        ("member.left", room, bob),
        ("member.joined", room, dan),
    ]
    assert [data(e) for e in events] == [
        {"user_id": bob, "role": "member"},
        {"user_id": cat, "role": "member"},
        {"user_id": bob, "role": "admin"},
        {"user_id": cat, "role": "member"},
        {"user_id": bob, "role": "admin"},
        {"user_id": dan, "role": "member", "invited_by": ann},
    ]


async def test_a_dm_is_created_once_and_a_rejoin_is_an_event(store: Store) -> None:
    ann, bob, cat = await users(store, "ann", "bob", "cat")
    dm, created, _ = await store.open_dm([ann, bob, cat], NOW, actor=ann)
    assert created
    [event] = await publish_all(store)
    assert shape([event]) == [("room.created", dm.id, ann)]
    assert data(event)["kind"] == "dm" and data(event)["member_ids"] == [ann, bob, cat]

    await store.open_dm([bob, ann, cat], NOW, actor=bob)  # the same DM: nothing new
    assert await publish_all(store) == []

    await store.remove_member(dm.id, cat, actor=cat)
    await store.open_dm([ann, bob, cat], NOW, actor=ann)  # cat is back: ann brought them
    events = await publish_all(store)
    assert shape(events) == [("member.left", dm.id, cat), ("member.added", dm.id, ann)]
    assert data(events[1]) == {"user_id": cat, "role": "member"}


async def test_a_change_that_fails_writes_no_event(store: Store) -> None:
    ann, bob = await users(store, "ann", "bob")
    room = (await store.create_room(ann, "lobby", "public", NOW)).id
    [appended] = await store.append([Draft(room, ann, "hi", None)], NOW)
    message = stored(appended)
    await store.delete_message(room, message.id, ann, False, NOW)
    before = await publish_all(store)
    gone = RoomId(room + 100)

    with pytest.raises(NotFound):
        await store.update_room(gone, "x", None, actor=ann)
    with pytest.raises(NotFound):
        await store.delete_room(gone, actor=ann)
    with pytest.raises(NotFound):
        await store.set_role(room, bob, "admin", actor=ann)  # not a member
    with pytest.raises(NotFound):
        await store.transfer_owner(room, bob, actor=ann)  # not a member
    with pytest.raises(MessageDeleted):
        await store.edit_message(room, message.id, ann, "again", NOW)
    with pytest.raises(MessageDeleted):
        await store.react(room, message.id, ann, "👍", True, NOW)
    with pytest.raises(NotFound):
        await store.edit_message(room, MessageId(99), ann, "again", NOW)
    [kept] = await store.append([Draft(room, bob, "mine", None)], NOW)
    with pytest.raises(Forbidden):
        await store.edit_message(room, stored(kept).id, ann, "yours", NOW)
    assert await store.delete_message(room, message.id, ann, True, NOW) is None  # already gone
    # A batch with a room that is gone: the rest of it commits, with its events only.
    outcomes = await store.append(
        [Draft(gone, ann, "lost", None), Draft(room, ann, "ok", None)], NOW
    )
    assert isinstance(outcomes[0], NotFound)

    events = await publish_all(store)
    assert shape(events) == [("message.created", room, bob), ("message.created", room, ann)]
    assert [data(e)["text"] for e in events] == ["mine", "ok"]
    assert [e.id for e in before + events] == list(range(1, len(before) + 3))


async def test_numbering_is_gapless_in_commit_order_and_stable_across_a_failed_publish(
    store: Store,
) -> None:
    (ann,) = await users(store, "ann")
    room = (await store.create_room(ann, "lobby", "public", NOW)).id
    await store.append([Draft(room, ann, f"m{i}", None) for i in range(5)], NOW)
    tried: list[Event] = []

    def fail(events: list[Event]) -> None:
        tried.extend(events)
        raise BrokerDown

    with pytest.raises(BrokerDown):
        await store.publish_events(fail, BATCH, NOW)
    # Nothing was recorded: nothing is published, and the same events come next, same ids.
    assert await store.last_event_id() == 0
    assert await store.events_after(0, 100) == []
    assert await store.outbox_backlog() == (6, NOW)
    published = await publish_all(store)
    assert published == tried
    assert [e.id for e in published] == [1, 2, 3, 4, 5, 6]
    assert [e.type for e in published] == ["room.created"] + ["message.created"] * 5
    assert [data(e)["text"] for e in published[1:]] == [f"m{i}" for i in range(5)]
    assert await store.outbox_backlog() == (0, None)

    # Small batches number on from the last id, with no hole.
    await store.append([Draft(room, ann, f"n{i}", None) for i in range(5)], NOW)
    broker = Broker()
    assert await store.publish_events(broker.publish, 2, NOW) == 2
    assert await store.publish_events(broker.publish, 2, NOW) == 2
    assert await store.publish_events(broker.publish, 2, NOW) == 1
    assert await store.publish_events(broker.publish, 2, NOW) == 0
    assert [e.id for e in broker.events] == [7, 8, 9, 10, 11]
    assert await store.last_event_id() == 11


async def test_replay_reads_published_events_from_any_id(store: Store) -> None:
    (ann,) = await users(store, "ann")
    room = (await store.create_room(ann, "lobby", "public", NOW)).id
    await store.append([Draft(room, ann, f"m{i}", None) for i in range(9)], NOW)
    published = await publish_all(store)
    assert await store.events_after(0, 100) == published
    assert await store.events_after(4, 3) == published[4:7]
    assert await store.events_after(10, 100) == []
    # Not yet published: not in the stream.
    await store.append([Draft(room, ann, "later", None)], NOW)
    assert await store.events_after(0, 100) == published

    # Published in batches of every size: any page from any id is the same events.
    for size in (1, 3, 2):
        await store.append([Draft(room, ann, f"s{size}.{i}", None) for i in range(5)], NOW)
        published += await publish_all(store, batch=size)
    assert [e.id for e in published] == list(range(1, 27))
    assert [data(e)["text"] for e in published[10:12]] == ["later", "s1.0"]
    for after in range(len(published) + 1):
        for limit in (1, 2, 4, 30):
            assert await store.events_after(after, limit) == published[after : after + limit]


async def test_numbering_without_a_broker_is_the_same_stream(store: Store) -> None:
    (ann,) = await users(store, "ann")
    room = (await store.create_room(ann, "lobby", "public", NOW)).id
    await store.append([Draft(room, ann, f"m{i}", None) for i in range(4)], NOW)
    # Numbered without being read (no broker to hand them to), then replayed.
    assert await store.number_events(3, NOW) == (3, 3)
    assert await store.number_events(3, NOW) == (2, 5)
    assert await store.number_events(3, NOW) == (0, 5)
    assert await store.outbox_backlog() == (0, None)
    replayed = await store.events_after(0, 100)
    assert [(e.id, e.type) for e in replayed] == [(1, "room.created")] + [
        (i, "message.created") for i in range(2, 6)
    ]
    assert [data(e)["text"] for e in replayed[1:]] == [f"m{i}" for i in range(4)]
    # A relay with a broker carries on from there.
    await store.append([Draft(room, ann, "next", None)], NOW)
    [following] = await publish_all(store)
    assert (following.id, data(following)["text"]) == (6, "next")


async def test_pruning_keeps_the_retention_and_the_numbering(store: Store) -> None:
    (ann,) = await users(store, "ann")
    room = (await store.create_room(ann, "lobby", "public", NOW)).id
    day_one = await publish_all(store, NOW)
    await store.append([Draft(room, ann, f"m{i}", None) for i in range(3)], NOW)
    day_two = await publish_all(store, NOW + timedelta(days=1), batch=1)
    await store.append([Draft(room, ann, "unpublished", None)], NOW)

    assert await store.prune_events(NOW + timedelta(hours=1)) == len(day_one)
    assert await store.events_after(0, 100) == day_two
    assert await store.events_after(2, 100) == day_two[1:]
    # Everything old goes but the newest batch (here one event), which the next id
    # counts on from; rows not published yet stay whatever their age.
    assert await store.prune_events(NOW + timedelta(days=30), limit=1) == 1
    assert await store.events_after(0, 100) == day_two[1:]
    assert await store.prune_events(NOW + timedelta(days=30)) == 1
    assert await store.prune_events(NOW + timedelta(days=30)) == 0
    assert await store.events_after(0, 100) == day_two[-1:]
    assert await store.last_event_id() == day_two[-1].id
    assert await store.outbox_backlog() == (1, NOW)
    [next_event] = await publish_all(store)
    assert next_event.id == day_two[-1].id + 1
    assert data(next_event)["text"] == "unpublished"
    assert await store.events_after(0, 100) == [day_two[-1], next_event]
