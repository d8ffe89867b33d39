"""The hub's user sink: a user event reaches that user's sockets here, whatever their
room, and nobody else's; a user who left has none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import trio

from chatd.bus.local import LocalBus
from chatd.closecodes import DISCONNECTED_BY_ADMIN, SESSION_ENDED
from chatd.hub.hub import Hub
from chatd.hub.member import Member
from chatd.hub.presence import LocalPresence, Presence
from chatd.metrics import Metrics
from chatd.model import RoomId, UserEvent, UserId
from chatd.store import Store

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FRAME = '{"type":"notification","payload":{"id":1}}'


@pytest.fixture
async def hub(nursery: trio.Nursery, sqlite_store: Store) -> AsyncIterator[tuple[Hub, LocalBus]]:
    presence = Presence(LocalPresence(), ttl_s=30, announce=lambda r: None, clock=trio.current_time)
    bus = LocalBus()
    hub = Hub(sqlite_store, bus, presence, Metrics(), room_inbox_size=64)
    await nursery.start(bus.run, hub.dispatch_nowait, hub.resync_all, hub.user_event_nowait)
    await nursery.start(hub.run)
    await nursery.start(presence.run, hub.presence_changed)
    yield hub, bus


async def joined(hub: Hub, room_id: RoomId, user_id: UserId) -> Member:
    member = Member(room_id, user_id, outbox_size=10)
    await hub.join(member)
    return member


async def test_a_notification_reaches_every_socket_of_its_user_and_only_theirs(
    hub: tuple[Hub, LocalBus], sqlite_store: Store
) -> None:
    the_hub, bus = hub
    ann = (await sqlite_store.create_user("ann@example.com", "h")).id
    bob = (await sqlite_store.create_user("bob@example.com", "h")).id
    one = (await sqlite_store.create_room(ann, "one", "public", NOW)).id
    two = (await sqlite_store.create_room(ann, "two", "public", NOW)).id
    anns = [await joined(the_hub, room, ann) for room in (one, two, two)]
    bobs = await joined(the_hub, one, bob)
    gone = await joined(the_hub, one, ann)
    the_hub.leave(gone)

    bus.publish_user_nowait(UserEvent(ann, "notification", FRAME))
    frames = [member.pending for member in anns]
    assert [[f.text for f in queued] for queued in frames] == [[FRAME]] * 3
    assert frames[0][0] is frames[1][0] is frames[2][0]  # one frame, shared
    assert bobs.pending == [] and gone.pending == []

    bus.publish_user_nowait(UserEvent(ann, "disconnect", "by an admin"))
    assert [(m.close_code, m.close_why) for m in anns] == [
        (DISCONNECTED_BY_ADMIN, "by an admin")
    ] * 3
    assert bobs.close_code is None
    for member in anns:
        the_hub.leave(member)
    bus.publish_user_nowait(UserEvent(ann, "notification", FRAME))  # nobody left: nothing
    # Ended sessions find the user's sockets the same way.
    the_hub.end_sessions(bob, bobs.signed_in_at + 1)
    assert bobs.close_code == SESSION_ENDED
