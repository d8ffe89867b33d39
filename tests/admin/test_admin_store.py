"""The store's side of administration, over SQLite and PostgreSQL: each action commits its
change, its audit row and its event together, or none of them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from chatd.errors import NotFound, RoomClosed
from chatd.events.event import Event
from chatd.model import AuditEntry, Draft, MessageId, RoomId, UserId
from chatd.store import Store

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def entry(action: str, target: int) -> AuditEntry:
    return AuditEntry(UserId(1), action, "room", target, instance="test")


async def published(store: Store) -> list[Event]:
    """Every event the outbox holds that was not published yet, in order."""
    found: list[Event] = []
    while await store.publish_events(found.extend, 500, NOW):
        pass
    return found


async def test_close_reopen_and_purge_commit_their_event_and_audit_row(store: Store) -> None:
    ann = (await store.create_user("ann@example.com", "h")).id
    bob = (await store.create_user("bob@example.com", "h")).id
    rid = (await store.create_room(ann, "r", "public", NOW)).id
    await store.add_member(rid, bob, NOW)
    await store.append(
        [Draft(rid, ann, "hello @bob searchable", None), Draft(rid, bob, "two", None)], NOW
    )
    await store.react(rid, MessageId(1), bob, "👍", True, NOW)
    await published(store)  # what came before

    closed = await store.close_room(rid, NOW, entry("room.close", rid))
    assert closed.closed_at == NOW
    assert (await store.room(rid)).closed_at == NOW  # type: ignore[union-attr]
    [refused] = await store.append([Draft(rid, ann, "late", None)], NOW)
    assert isinstance(refused, RoomClosed)
    with pytest.raises(RoomClosed):
        await store.edit_message(rid, MessageId(1), ann, "edited", NOW)
    await store.close_room(rid, NOW, entry("room.close", rid))  # again: no second event
    reopened = await store.reopen_room(rid, NOW, entry("room.reopen", rid))
    assert reopened.closed_at is None

    assert await store.purge_room(rid, NOW, entry("room.purge", rid)) == (2, 3)
    assert await store.messages_after(rid, 0, 100) == []
    assert await store.reactions(rid, 0, 10, bob) == {}
    assert await store.search_messages(bob, ["searchable"], None, None, 10) == []
    [(_, membership)] = [
        found for found in await store.rooms_visible_to(bob, None, 10) if found[0].id == rid
    ]
    assert membership is not None and (membership.unread, membership.mentions) == (0, 0)
    [after] = await store.append([Draft(rid, ann, "after", None)], NOW)
    assert not isinstance(after, Exception) and after.message.id == 4  # numbering goes on

    events = [e for e in await published(store) if e.type.startswith("room.")]
    assert [(e.type, e.room_id, e.actor_id, json.loads(e.data)) for e in events] == [
        ("room.closed", rid, 1, {"room_id": rid, "closed_at": "2026-03-01T12:00:00.000000Z"}),
        ("room.reopened", rid, 1, {"room_id": rid}),
        ("room.purged", rid, 1, {"room_id": rid, "up_to": 3}),
    ]
    log = await store.audit_log(None, 10)
    assert [(e.action, e.detail, e.instance) for e in log] == [
        ("room.purge", {"messages": 2, "up_to": 3}, "test"),
        ("room.reopen", {"changed": True}, "test"),
        ("room.close", {"changed": False}, "test"),
        ("room.close", {"changed": True}, "test"),
    ]
    assert [e.id for e in await store.audit_log(log[1].id, 10)] == [e.id for e in log[2:]]


async def test_an_action_that_fails_leaves_no_audit_row(store: Store) -> None:
    for action in (store.close_room, store.reopen_room, store.purge_room):
        with pytest.raises(NotFound):
            await action(RoomId(404), NOW, entry("room.x", 404))
    with pytest.raises(NotFound):
        await store.set_admin(UserId(404), True, entry("user.grant_admin", 404))
    with pytest.raises(NotFound):
        await store.admin_disconnect(UserId(404), True, NOW, entry("user.disconnect", 404))
    with pytest.raises(NotFound):  # no such user, and no password to create one with
        await store.make_admin("nobody@example.com", None, entry("user.create_admin", 0))
    assert await store.audit_log(None, 10) == []


async def test_make_admin_creates_or_promotes_and_revoking_sessions_cuts_tokens(
    store: Store,
) -> None:
    user, created = await store.make_admin("Root@Example.com", "hash", entry("x", 0))
    assert created and await store.is_admin(user.id)
    same, created = await store.make_admin("root@example.COM", None, entry("x", 0))
    assert (same.id, created) == (user.id, False)
    assert await store.set_admin(user.id, False, entry("user.revoke_admin", user.id))
    assert not await store.is_admin(user.id)
    await store.add_refresh_token(user.id, "token-hash", "family", datetime(2099, 1, 1, tzinfo=UTC))
    await store.admin_disconnect(user.id, True, NOW, entry("user.disconnect", user.id))
    assert await store.use_refresh_token("token-hash", NOW, 10) is None
    assert await store.token_cutoffs(datetime(2026, 1, 1, tzinfo=UTC)) == {user.id: NOW}
