"""The notifications role in one process (the default "all", no broker): mentions and DMs
to offline people become notifications, read back over REST and pushed to live sockets."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import jsonschema
import pytest
import trio

from chatd.config import Settings
from chatd.notifications.consumer import CONSUMER
from chatd.store import open_store
from tests.conftest import start_server
from tests.helpers import Account, Api
from tests.notifications.helpers import (
    notifications,
    send,
    wait_for_notifications,
    wait_online,
)
from tests.transport.test_ops import schema_for


async def join(api: Api, who: Account, room_id: int) -> None:
    reply = await api.http.post(f"/api/v1/rooms/{room_id}/join", headers=who.headers)
    assert reply.status_code in (200, 201, 204), reply.text


async def open_dm(api: Api, who: Account, *others: Account) -> dict[str, Any]:
    reply = await api.http.post(
        "/api/v1/dms", json={"user_ids": [o.id for o in others]}, headers=who.headers
    )
    assert reply.status_code in (200, 201), reply.text
    return reply.json()  # type: ignore[no-any-return]


async def test_a_mention_waits_for_its_user_and_is_read_once(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    await join(api, bob, room["id"])
    sent = await send(api, ann, room["id"], f"hi @{bob.id}, look at this")
    assert sent["mentions"] == [bob.id]

    [mention] = await wait_for_notifications(api, bob, 1)
    assert mention["kind"] == "mention"
    assert mention["room_id"] == room["id"]
    assert mention["message_id"] == sent["id"]
    assert mention["sender_id"] == ann.id
    assert mention["excerpt"] == f"hi @{bob.id}, look at this"
    assert mention["read"] is False
    page = await notifications(api, bob)
    assert page["unread_count"] == 1 and page["next"] is None
    jsonschema.validate(page, schema_for("NotificationPage"))  # as the API document says
    # The author is never notified of their own message.
    assert (await notifications(api, ann))["items"] == []

    reply = await api.http.post(
        "/api/v1/notifications/read", json={"ids": [mention["id"]]}, headers=bob.headers
    )
    assert reply.status_code == 200 and reply.json() == {"unread_count": 0}
    jsonschema.validate(reply.json(), schema_for("UnreadCount"))
    again = await api.http.post(
        "/api/v1/notifications/read", json={"ids": [mention["id"]]}, headers=bob.headers
    )
    assert again.json() == {"unread_count": 0}  # idempotent
    page = await notifications(api, bob)
    assert page["items"][0]["read"] is True and page["unread_count"] == 0
    assert (await notifications(api, bob, unread="true"))["items"] == []


async def test_nobody_reads_or_marks_another_users_notifications(api: Api) -> None:
    ann, bob, eve = await api.signup(), await api.signup(), await api.signup()
    room = await api.create_room(ann)
    await join(api, bob, room["id"])
    await send(api, ann, room["id"], f"@{bob.id} only for you")
    [mention] = await wait_for_notifications(api, bob, 1)

    assert (await notifications(api, eve))["items"] == []
    reply = await api.http.post(
        "/api/v1/notifications/read", json={"up_to": mention["id"]}, headers=eve.headers
    )
    assert reply.status_code == 200 and reply.json() == {"unread_count": 0}
    assert (await notifications(api, bob))["unread_count"] == 1  # still unread for bob
    anonymous = await api.http.get("/api/v1/notifications")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"


async def test_read_state_pages_and_bad_input(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    await join(api, bob, room["id"])
    async with api.socket(ann, room["id"]) as sock:
        for i in range(5):
            await sock.send(f"@{bob.id} number {i}")
        await sock.messages(5)
    items = await wait_for_notifications(api, bob, 5)
    assert [n["excerpt"] for n in items] == [f"@{bob.id} number {i}" for i in (4, 3, 2, 1, 0)]

    first = await notifications(api, bob, limit=2)
    assert [n["id"] for n in first["items"]] == [items[0]["id"], items[1]["id"]]
    rest = await notifications(api, bob, limit=10, before=first["next"])
    assert [n["id"] for n in rest["items"]] == [n["id"] for n in items[2:]]

    reply = await api.http.post(
        "/api/v1/notifications/read", json={"up_to": items[2]["id"]}, headers=bob.headers
    )
    assert reply.json() == {"unread_count": 2}
    unread = await notifications(api, bob, unread="true")
    assert [n["id"] for n in unread["items"]] == [items[0]["id"], items[1]["id"]]
    count = await api.http.get("/api/v1/notifications/unread_count", headers=bob.headers)
    assert count.json() == {"unread_count": 2}

    for body in ({}, {"ids": "1"}, {"ids": [0]}, {"up_to": True}, {"ids": [1] * 501}):
        bad = await api.http.post("/api/v1/notifications/read", json=body, headers=bob.headers)
        assert bad.status_code == 422, (body, bad.text)
        assert bad.json()["error"]["code"] == "validation_error"
    bad = await api.http.get("/api/v1/notifications?unread=maybe", headers=bob.headers)
    assert bad.status_code == 422


async def test_a_dm_notifies_the_members_who_are_offline_only(api: Api) -> None:
    ann, bob, cat = await api.signup(), await api.signup(), await api.signup()
    dm = await open_dm(api, ann, bob, cat)
    lobby = await api.create_room(ann)
    await join(api, bob, lobby["id"])
    # bob is online (a socket in another room); cat has no socket anywhere.
    async with api.socket(bob, lobby["id"]) as bob_sock:
        await wait_online(api, bob, ann, lobby["id"])
        sent = await send(api, ann, dm["id"], "are you there?")
        [dm_note] = await wait_for_notifications(api, cat, 1)
        assert dm_note["kind"] == "dm" and dm_note["message_id"] == sent["id"]
        # A DM that also mentions cat: one notification for it, a mention.
        mentioned = await send(api, ann, dm["id"], f"@{cat.id} please answer")
        [mention, _] = await wait_for_notifications(api, cat, 2)
        assert mention["kind"] == "mention" and mention["message_id"] == mentioned["id"]
        # bob was online for both: nothing for him, and nothing pushed to his socket.
        assert (await notifications(api, bob))["items"] == []
        with trio.move_on_after(0.3):
            frame = await bob_sock.frame()
            assert frame["type"] != "notification", frame


async def test_a_mention_is_pushed_to_every_live_socket_of_its_user(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    room, other = await api.create_room(ann), await api.create_room(ann, "other")
    await join(api, bob, room["id"])
    await join(api, bob, other["id"])
    async with api.socket(bob, room["id"]) as here, api.socket(bob, other["id"]) as there:
        sent = await send(api, ann, room["id"], f"@{bob.id} ping")
        pushed = [await sock.expect("notification") for sock in (here, there)]
    assert pushed[0] == pushed[1]
    assert pushed[0]["kind"] == "mention" and pushed[0]["message_id"] == sent["id"]
    [stored] = await wait_for_notifications(api, bob, 1)
    assert stored == pushed[0]


async def test_a_replayed_stream_records_nothing_twice(
    nursery: trio.Nursery, settings: Settings
) -> None:
    api, scope = await start_server(nursery, settings)
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    await join(api, bob, room["id"])
    for text in ("one", "two"):
        await send(api, ann, room["id"], f"@{bob.id} {text}")
    before = await wait_for_notifications(api, bob, 2)
    scope.cancel()
    await api.aclose()

    store = open_store(settings.database_url)
    try:
        processed = await store.consumer_position(CONSUMER)
        assert processed > 0
        await store.set_consumer_position(CONSUMER, 0)  # replay every event
        api, scope = await start_server(nursery, replace(settings, instance_id="again"))
        await send(api, ann, room["id"], f"@{bob.id} three")
        after = await wait_for_notifications(api, bob, 3)
        with trio.fail_after(10):
            while await store.consumer_position(CONSUMER) <= processed:  # noqa: ASYNC110
                await trio.sleep(0.05)
    finally:
        await store.aclose()
    assert after[1:] == before
    assert (await notifications(api, bob))["unread_count"] == 3
    scope.cancel()
    await api.aclose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_standby_takes_over_when_the_consumer_stops(
    nursery: trio.Nursery, settings: Settings
) -> None:
    first, first_scope = await start_server(nursery, replace(settings, instance_id="first"))
    ann, bob = await first.signup(), await first.signup()
    room = await first.create_room(ann)
    await join(first, bob, room["id"])
    await send(first, ann, room["id"], f"@{bob.id} before")
    await wait_for_notifications(first, bob, 1)  # the first server's consumer has the lease
    second, second_scope = await start_server(nursery, replace(settings, instance_id="second"))
    first_scope.cancel()  # a clean stop hands the lease over
    await first.aclose()

    await send(second, ann, room["id"], f"@{bob.id} after")
    [after, before] = await wait_for_notifications(second, bob, 2)
    assert (after["excerpt"], before["excerpt"]) == (f"@{bob.id} after", f"@{bob.id} before")
    second_scope.cancel()
    await second.aclose()
