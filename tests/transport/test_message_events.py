"""Edits, deletions, reactions, mentions and read state (docs/protocol.md), on both
stores: what history shows, what live sockets are sent, what a resume replays."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import trio

from tests.conftest import start_server
from tests.helpers import Account, Api
from tests.transport.test_conversations import get, post, put
from tests.transport.test_rest_auth import assert_error

THUMBS = "\N{THUMBS UP SIGN}"
FAMILY = "\N{MAN}\u200d\N{WOMAN}\u200d\N{GIRL}"  # one emoji made of several characters


async def sent(api: Api, who: Account, room_id: int, *texts: str) -> list[dict[str, Any]]:
    """Send texts over a socket and return their echoes: committed when this returns."""
    async with api.socket(who, room_id) as ws:
        for text in texts:
            await ws.send(text)
        return await ws.messages(len(texts))


def reactions_path(room_id: int, message_id: int, emoji: str) -> str:
    return f"/rooms/{room_id}/messages/{message_id}/reactions/{quote(emoji)}"


async def test_an_edit_reaches_live_members_and_history_shows_the_new_text(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    [original] = await sent(api, ann, room["id"], "helo")
    async with api.socket(bob, room["id"]) as watching:
        reply = await api.http.patch(
            f"/api/v1/rooms/{room['id']}/messages/{original['id']}",
            json={"text": "hello"},
            headers=ann.headers,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["text"] == "hello" and "edited_at" in reply.json()
        event = await watching.expect("message_edited")
    assert event["message_id"] == original["id"] and event["text"] == "hello"
    assert event["id"] == original["id"] + 1 and event["user_id"] == ann.id
    [shown] = (await api.history(bob, room["id"]))["items"]
    assert shown["text"] == "hello" and shown["edited_at"] == event["edited_at"]

    # Only the author edits; a deleted message cannot be edited; bad text changes nothing.
    path = f"/api/v1/rooms/{room['id']}/messages/{original['id']}"
    assert_error(await api.http.patch(path, json={"text": "mine"}, headers=bob.headers), 403)
    assert_error(await api.http.patch(path, json={"text": " "}, headers=ann.headers), 422)
    assert_error(
        await api.http.patch(
            f"/api/v1/rooms/{room['id']}/messages/{event['id']}",
            json={"text": "x"},
            headers=ann.headers,
        ),
        404,
    )  # an event is not a message
    assert (await api.history(bob, room["id"]))["items"] == [shown]


async def test_a_deletion_leaves_a_tombstone_and_admins_delete_anyones(api: Api) -> None:
    owner, ann, bob = [await api.signup() for _ in range(3)]
    room = await api.create_room(owner)
    for person in (ann, bob):
        await post(api, person, f"/rooms/{room['id']}/join")
    [mine] = await sent(api, ann, room["id"], "oops")
    [theirs] = await sent(api, bob, room["id"], "spam")
    path = f"/api/v1/rooms/{room['id']}/messages"
    assert_error(await api.http.delete(f"{path}/{theirs['id']}", headers=ann.headers), 403)
    async with api.socket(bob, room["id"]) as watching:
        assert (
            await api.http.delete(f"{path}/{mine['id']}", headers=ann.headers)
        ).status_code == 204
        gone = await watching.expect("message_deleted", message_id=mine["id"])
        assert gone["user_id"] == ann.id and "text" not in gone
        # The owner deletes bob's; a second deletion is no new event.
        assert (
            await api.http.delete(f"{path}/{theirs['id']}", headers=owner.headers)
        ).status_code == 204
        assert (
            await api.http.delete(f"{path}/{theirs['id']}", headers=owner.headers)
        ).status_code == 204
        by_owner = await watching.expect("message_deleted", message_id=theirs["id"])
        assert by_owner["user_id"] == owner.id
        await watching.send("after")
        after = await watching.message()
        assert after["id"] == by_owner["id"] + 1  # no event between
    items = (await api.history(ann, room["id"]))["items"]
    assert [(m["id"], m["text"], m.get("deleted")) for m in items] == [
        (mine["id"], "", True),
        (theirs["id"], "", True),
        (after["id"], "after", None),
    ]
    # Nothing more may be done to a tombstone.
    assert_error(
        await api.http.patch(f"{path}/{mine['id']}", json={"text": "x"}, headers=ann.headers),
        409,
        "message_deleted",
    )
    assert_error(
        await api.http.put(
            f"/api/v1{reactions_path(room['id'], mine['id'], THUMBS)}", headers=ann.headers
        ),
        409,
        "message_deleted",
    )


async def test_reactions_are_counted_per_emoji_and_sent_live(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    rid = room["id"]
    [message] = await sent(api, ann, rid, "ship it")
    async with api.socket(ann, rid) as watching:
        added = await put(api, bob, reactions_path(rid, message["id"], THUMBS))
        assert added == {"message_id": message["id"], "emoji": THUMBS, "count": 1, "me": True}
        live = await watching.expect("reaction")
        assert (live["emoji"], live["action"], live["count"], live["user_id"]) == (
            THUMBS, "added", 1, bob.id,
        )  # fmt: skip
        assert (await put(api, bob, reactions_path(rid, message["id"], THUMBS)))["count"] == 1
        assert (await put(api, ann, reactions_path(rid, message["id"], THUMBS)))["count"] == 2
        assert (await put(api, ann, reactions_path(rid, message["id"], FAMILY)))["count"] == 1
        second = await watching.expect("reaction", user_id=ann.id, emoji=THUMBS)
        assert second["count"] == 2 and second["id"] == live["id"] + 1  # the repeat made none
    [shown] = (await api.history(bob, rid))["items"]
    assert shown["reactions"] == [
        {"emoji": THUMBS, "count": 2, "me": True},
        {"emoji": FAMILY, "count": 1, "me": False},
    ]
    removed = await api.http.delete(
        f"/api/v1{reactions_path(rid, message['id'], THUMBS)}", headers=bob.headers
    )
    assert removed.json() == {"message_id": message["id"], "emoji": THUMBS, "count": 1, "me": False}
    [shown] = (await api.history(bob, rid))["items"]
    assert shown["reactions"][0] == {"emoji": THUMBS, "count": 1, "me": False}
    for bad in (" ", "a b", "x" * 17, "\u202e"):
        assert_error(
            await api.http.put(
                f"/api/v1{reactions_path(rid, message['id'], bad)}", headers=bob.headers
            ),
            422,
        )
    assert_error(
        await api.http.put(f"/api/v1{reactions_path(rid, 999, THUMBS)}", headers=bob.headers), 404
    )


async def test_a_message_takes_at_most_twenty_different_reactions(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    [message] = await sent(api, ann, room["id"], "vote")
    for n in range(20):
        await put(api, ann, reactions_path(room["id"], message["id"], chr(0x1F600 + n)))
    assert_error(
        await api.http.put(
            f"/api/v1{reactions_path(room['id'], message['id'], chr(0x1F620))}",
            headers=ann.headers,
        ),
        409,
        "too_many_reactions",
    )
    # One already there may still be added by others.
    bob = await api.signup()
    assert (await put(api, bob, reactions_path(room["id"], message["id"], chr(0x1F600))))[
        "count"
    ] == 2


async def test_a_resume_replays_edits_deletions_and_reactions_in_order(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    rid = room["id"]
    first, second = await sent(api, ann, rid, "one", "two")
    path = f"/api/v1/rooms/{rid}/messages"
    await api.http.patch(f"{path}/{first['id']}", json={"text": "uno"}, headers=ann.headers)
    await put(api, bob, reactions_path(rid, second["id"], THUMBS))
    await api.http.delete(f"{path}/{second['id']}", headers=ann.headers)
    async with api.socket(bob, rid, since=second["id"]) as resumed:
        replayed = [await resumed.next_frame() for _ in range(3)]
    assert [(f["type"], f["payload"]["id"]) for f in replayed] == [
        ("message_edited", second["id"] + 1),
        ("reaction", second["id"] + 2),
        ("message_deleted", second["id"] + 3),
    ]
    async with api.socket(bob, rid, since=0) as from_start:
        everything = [await from_start.next_frame() for _ in range(5)]
    # Replayed from the store as it now is: the message shows its new text, the
    # deleted one no text at all, and the events follow.
    assert everything[0]["payload"]["text"] == "uno"
    assert everything[1]["payload"]["text"] == "" and everything[1]["payload"]["deleted"]
    assert [f["payload"]["id"] for f in everything] == [1, 2, 3, 4, 5]


async def test_unread_and_mentions_count_past_the_watermark(api: Api) -> None:
    ann = await api.signup("ann@example.com")
    bob = await api.signup("bob@example.com")
    room = await api.create_room(ann, "team")
    rid = room["id"]
    await post(api, bob, f"/rooms/{rid}/join")
    texts = ["hi all", "@bob look", f"@{bob.id} and @ann", "bob@example.com is no mention"]
    echoes = await sent(api, ann, rid, *texts)
    assert "mentions" not in echoes[0]
    assert echoes[1]["mentions"] == [bob.id]  # @ann is the author: not counted
    assert echoes[2]["mentions"] == [bob.id]
    assert "mentions" not in echoes[3]
    seen = await get(api, bob, f"/rooms/{rid}")
    assert (seen["unread"], seen["mentions"], seen["last_read_id"]) == (4, 2, 0)
    # The sender has read their own messages.
    assert (await get(api, ann, f"/rooms/{rid}"))["unread"] == 0

    marked = await post(api, bob, f"/rooms/{rid}/read", {"message_id": echoes[1]["id"]})
    assert marked == {"last_read_id": echoes[1]["id"], "unread": 2, "mentions": 1}
    # Never back; and past the newest is the newest.
    back = await post(api, bob, f"/rooms/{rid}/read", {"message_id": 1})
    assert back["last_read_id"] == echoes[1]["id"]
    done = await post(api, bob, f"/rooms/{rid}/read", {"message_id": 10**6})
    assert done == {"last_read_id": echoes[3]["id"], "unread": 0, "mentions": 0}
    listed = (await get(api, bob, "/rooms", joined="true"))["items"]
    assert [(r["unread"], r["mentions"]) for r in listed] == [(0, 0)]

    # Edits and reactions are not unread messages; an edit that mentions bob counts.
    await put(api, ann, reactions_path(rid, echoes[0]["id"], THUMBS))
    reply = await api.http.patch(
        f"/api/v1/rooms/{rid}/messages/{echoes[0]['id']}", json={"text": "hi @bob"},
        headers=ann.headers,
    )  # fmt: skip
    assert reply.json()["mentions"] == [bob.id]
    seen = await get(api, bob, f"/rooms/{rid}")
    assert (seen["unread"], seen["mentions"]) == (0, 0)  # that message was read already
    [new] = await sent(api, ann, rid, "@BOB again")
    seen = await get(api, bob, f"/rooms/{rid}")
    assert (seen["unread"], seen["mentions"]) == (1, 1) and new["mentions"] == [bob.id]
    # A deleted mention no longer counts.
    await api.http.delete(f"/api/v1/rooms/{rid}/messages/{new['id']}", headers=ann.headers)
    assert (await get(api, bob, f"/rooms/{rid}"))["mentions"] == 0

    # Outsiders and bad input.
    cat = await api.signup()
    assert_error(
        await api.http.post(
            f"/api/v1/rooms/{rid}/read", json={"message_id": 1}, headers=cat.headers
        ),
        403,
    )
    assert_error(
        await api.http.post(
            f"/api/v1/rooms/{rid}/read", json={"message_id": "1"}, headers=bob.headers
        ),
        422,
    )


async def test_read_marks_are_sent_live_in_a_dm_and_listed_as_seen_by(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    dm = await post(api, ann, "/dms", {"user_id": bob.id}, 201)
    rid = dm["id"]
    [message] = await sent(api, ann, rid, "seen?")
    async with api.socket(ann, rid) as watching:
        await post(api, bob, f"/rooms/{rid}/read", {"message_id": message["id"]})
        mark = await watching.expect("read", user_id=bob.id)
    assert mark == {"room_id": rid, "user_id": bob.id, "message_id": message["id"]}
    reads = await get(api, ann, f"/rooms/{rid}/reads")
    assert reads == {
        "items": [
            {"user_id": min(ann.id, bob.id), "last_read_id": message["id"]},
            {"user_id": max(ann.id, bob.id), "last_read_id": message["id"]},
        ],
        "seen_by": True,
    }


async def test_rooms_over_the_seen_by_limit_show_no_reads(
    nursery: trio.Nursery, settings_with: Any
) -> None:
    api, _ = await start_server(nursery, settings_with(seen_by_max_members=2))
    try:
        ann, bob, cat = [await api.signup() for _ in range(3)]
        room = await api.create_room(ann)
        await post(api, bob, f"/rooms/{room['id']}/join")
        assert (await get(api, ann, f"/rooms/{room['id']}/reads"))["seen_by"] is True
        await post(api, cat, f"/rooms/{room['id']}/join")
        assert await get(api, ann, f"/rooms/{room['id']}/reads") == {
            "items": [],
            "seen_by": False,
        }
        # Read state still works; it is only not shown to others.
        [echo] = await sent(api, ann, room["id"], "hello")
        marked = await post(api, bob, f"/rooms/{room['id']}/read", {"message_id": echo["id"]})
        assert marked["unread"] == 0
    finally:
        await api.aclose()


async def test_read_marks_are_throttled_to_the_newest_per_interval(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    dm = await post(api, ann, "/dms", {"user_id": bob.id}, 201)
    rid = dm["id"]
    echoes = await sent(api, ann, rid, *[f"m{i}" for i in range(5)])
    async with api.socket(ann, rid) as watching:
        for echo in echoes:
            await post(api, bob, f"/rooms/{rid}/read", {"message_id": echo["id"]})
        first = await watching.expect("read", user_id=bob.id)
        last = await watching.expect("read", user_id=bob.id)
        # The first move goes out at once; the rest within the interval become one, the
        # newest (tests/hub/test_read_marks.py times it with a mock clock).
        assert first["message_id"] == echoes[0]["id"]
        assert last["message_id"] == echoes[-1]["id"]
