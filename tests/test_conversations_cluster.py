"""Conversations across instances: every event caused through instance A's REST API reaches
the sockets held by instance B (real chatd processes, one PostgreSQL, one Redis), a resume
on B replays the events, and concurrent DM opens on both instances make one room."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from chatd.closecodes import REMOVED_FROM_ROOM
from tests.helpers import Account, closed_with
from tests.processes import Cluster, Instance, login_on, two_instances_one_room
from tests.redisserver import RedisServer
from tests.transport.test_dms import assert_one_dm, both_sides, open_dm_at_once

THUMBS_UP = "\N{THUMBS UP SIGN}"
PARTY = "\N{PARTY POPPER}"


@pytest.fixture
async def cluster(nursery: trio.Nursery, postgres_database: str, redis: RedisServer) -> Cluster:
    return Cluster(nursery, postgres_database, redis.url)


def ok(reply: Any, status: int = 200) -> Any:
    assert reply.status_code == status, (reply.request.method, reply.request.url, reply.text)
    return reply.json() if reply.content else None


async def test_edits_deletions_and_reactions_through_a_reach_b_live_and_on_resume(
    cluster: Cluster,
) -> None:
    a, b, ann, bob_on_b, room = await two_instances_one_room(cluster)
    cat = await a.api.signup()
    rid, http = room["id"], a.api.http
    messages = f"/api/v1/rooms/{rid}/messages"

    async with a.api.socket(ann, rid) as ann_ws, b.api.socket(bob_on_b, rid) as bob_ws:
        await ann_ws.send("first", client_id="f")
        await ann_ws.send("second", client_id="s")
        assert [m["id"] for m in await bob_ws.messages(2)] == [1, 2]

        edited = ok(await http.patch(f"{messages}/1", json={"text": "first!"}, headers=ann.headers))
        assert (edited["id"], edited["text"]) == (1, "first!")
        added = ok(await http.put(f"{messages}/2/reactions/{THUMBS_UP}", headers=ann.headers))
        assert added == {"message_id": 2, "emoji": THUMBS_UP, "count": 1, "me": True}
        added = ok(await http.put(f"{messages}/2/reactions/{THUMBS_UP}", headers=cat.headers))
        assert added == {"message_id": 2, "emoji": THUMBS_UP, "count": 2, "me": True}
        removed = ok(await http.delete(f"{messages}/2/reactions/{THUMBS_UP}", headers=ann.headers))
        assert removed == {"message_id": 2, "emoji": THUMBS_UP, "count": 1, "me": False}
        ok(await http.delete(f"{messages}/1", headers=ann.headers), 204)

        # B's socket gets each event as the room's next id, in order, and nothing else
        # of the sequence in between.
        live = [await bob_ws.next_frame() for _ in range(5)]
    assert [(f["type"], f["payload"]["id"]) for f in live] == [
        ("message_edited", 3),
        ("reaction", 4),
        ("reaction", 5),
        ("reaction", 6),
        ("message_deleted", 7),
    ]
    edit, *reactions, deletion = [f["payload"] for f in live]
    assert {k: edit[k] for k in ("room_id", "user_id", "message_id", "text")} == {
        "room_id": rid,
        "user_id": ann.id,
        "message_id": 1,
        "text": "first!",
    }
    assert edit["edited_at"].endswith("Z")
    assert [
        (r["user_id"], r["message_id"], r["emoji"], r["action"], r["count"]) for r in reactions
    ] == [
        (ann.id, 2, THUMBS_UP, "added", 1),
        (cat.id, 2, THUMBS_UP, "added", 2),
        (ann.id, 2, THUMBS_UP, "removed", 1),
    ]
    assert {k: deletion[k] for k in ("room_id", "user_id", "message_id")} == {
        "room_id": rid,
        "user_id": ann.id,
        "message_id": 1,
    }
    assert deletion["deleted_at"].endswith("Z")

    # While nobody listens on B, more events through A; then B resumes after id 2.
    ok(await http.patch(f"{messages}/2", json={"text": "second!"}, headers=ann.headers))
    ok(await http.put(f"{messages}/2/reactions/{PARTY}", headers=cat.headers))
    ok(await http.delete(f"{messages}/2", headers=ann.headers), 204)
    async with b.api.socket(bob_on_b, rid, since=2) as resumed:
        replayed = [await resumed.next_frame() for _ in range(8)]
    assert [(f["type"], f["payload"]["id"]) for f in replayed] == [
        ("message_edited", 3),
        ("reaction", 4),
        ("reaction", 5),
        ("reaction", 6),
        ("message_deleted", 7),
        ("message_edited", 8),
        ("reaction", 9),
        ("message_deleted", 10),
    ]
    assert replayed[:5] == live  # a replay is what a live member was sent
    edit, reaction, deletion = [f["payload"] for f in replayed[5:]]
    assert (edit["message_id"], edit["text"], edit["user_id"]) == (2, "second!", ann.id)
    assert (reaction["message_id"], reaction["emoji"], reaction["action"], reaction["count"]) == (
        2,
        PARTY,
        "added",
        1,
    )
    assert (deletion["message_id"], deletion["user_id"]) == (2, ann.id)


async def test_a_read_mark_through_a_reaches_the_dm_on_b(cluster: Cluster) -> None:
    a, b = await cluster.start(), await cluster.start()
    ann, bob = await a.api.signup(), await a.api.signup()
    dm = ok(
        await a.api.http.post("/api/v1/dms", json={"user_id": bob.id}, headers=ann.headers), 201
    )
    bob_on_b = await login_on(b.api, bob)
    async with b.api.socket(bob_on_b, dm["id"]) as bob_ws:
        await bob_ws.send("are you there?", client_id="q")
        sent = await bob_ws.message()
        seen = ok(
            await a.api.http.post(
                f"/api/v1/rooms/{dm['id']}/read",
                json={"message_id": sent["id"]},
                headers=ann.headers,
            )
        )
        assert seen == {"last_read_id": sent["id"], "unread": 0, "mentions": 0}
        read = await bob_ws.expect("read", user_id=ann.id)
        assert read == {"room_id": dm["id"], "user_id": ann.id, "message_id": sent["id"]}
    reads = ok(await b.api.http.get(f"/api/v1/rooms/{dm['id']}/reads", headers=bob_on_b.headers))
    assert reads["seen_by"] is True
    assert {item["user_id"]: item["last_read_id"] for item in reads["items"]} == {
        ann.id: sent["id"],
        bob.id: sent["id"],
    }


async def test_membership_and_room_changes_through_a_reach_b(cluster: Cluster) -> None:
    a, b, ann, bob_on_b, room = await two_instances_one_room(cluster)
    cat = await a.api.signup()
    rid, http = room["id"], a.api.http
    async with b.api.socket(bob_on_b, rid) as bob_ws:
        joined = ok(await http.post(f"/api/v1/rooms/{rid}/join", headers=cat.headers))
        assert (joined["id"], joined["role"]) == (rid, "member")
        frame = await bob_ws.expect("member", user_id=cat.id)
        assert frame == {"room_id": rid, "user_id": cat.id, "change": "joined", "role": "member"}

        promoted = ok(
            await http.put(
                f"/api/v1/rooms/{rid}/members/{cat.id}/role",
                json={"role": "admin"},
                headers=ann.headers,
            )
        )
        assert (promoted["user_id"], promoted["role"]) == (cat.id, "admin")
        frame = await bob_ws.expect("member", user_id=cat.id)
        assert frame == {
            "room_id": rid,
            "user_id": cat.id,
            "change": "role_changed",
            "role": "admin",
        }

        ok(await http.post(f"/api/v1/rooms/{rid}/leave", headers=cat.headers), 204)
        frame = await bob_ws.expect("member", user_id=cat.id)
        assert frame == {"room_id": rid, "user_id": cat.id, "change": "left"}

        renamed = ok(
            await http.patch(f"/api/v1/rooms/{rid}", json={"name": "renamed"}, headers=ann.headers)
        )
        frame = await bob_ws.expect("room")
        assert frame == {k: renamed[k] for k in frame}
        assert {k: frame.get(k) for k in ("id", "name", "kind", "visibility", "owner_id")} == {
            "id": rid,
            "name": "renamed",
            "kind": "room",
            "visibility": "public",
            "owner_id": ann.id,
        }


async def private_room_with(a: Instance, owner: Account, *people: Account) -> dict[str, Any]:
    room = await a.api.create_room(owner, "private", "private")
    for who in people:
        put = await a.api.http.put(
            f"/api/v1/rooms/{room['id']}/members/{who.id}", headers=owner.headers
        )
        ok(put, 204)
    return room


async def test_losing_access_through_a_closes_the_socket_on_b(cluster: Cluster) -> None:
    a, b = await cluster.start(), await cluster.start()
    ann, bob, cat = [await a.api.signup() for _ in range(3)]
    bob_on_b, cat_on_b, ann_on_b = [await login_on(b.api, who) for who in (bob, cat, ann)]
    http = a.api.http

    # Removed from a private room by its owner, through A.
    private = await private_room_with(a, ann, bob, cat)
    pid = private["id"]
    async with b.api.socket(bob_on_b, pid) as bob_ws, b.api.socket(cat_on_b, pid) as cat_ws:
        ok(await http.delete(f"/api/v1/rooms/{pid}/members/{bob.id}", headers=ann.headers), 204)
        assert await closed_with(bob_ws) == REMOVED_FROM_ROOM
        frame = await cat_ws.expect("member", user_id=bob.id)
        assert frame == {"room_id": pid, "user_id": bob.id, "change": "removed"}

    # Leaving an invite room, through A.
    invite = await a.api.create_room(ann, "by invitation", "invite")
    iid = invite["id"]
    ok(
        await http.post(
            f"/api/v1/rooms/{iid}/invites", json={"user_id": bob.id}, headers=ann.headers
        ),
        201,
    )
    ok(await http.post(f"/api/v1/users/me/invites/{iid}/accept", headers=bob.headers))
    async with b.api.socket(bob_on_b, iid) as bob_ws, b.api.socket(ann_on_b, iid) as ann_ws:
        ok(await http.post(f"/api/v1/rooms/{iid}/leave", headers=bob.headers), 204)
        assert await closed_with(bob_ws) == REMOVED_FROM_ROOM
        frame = await ann_ws.expect("member", user_id=bob.id)
        assert frame == {"room_id": iid, "user_id": bob.id, "change": "left"}


async def test_a_pair_opening_their_dm_at_once_on_both_instances_gets_one_room(
    cluster: Cluster,
) -> None:
    a, b = await cluster.start(), await cluster.start()
    ann, bob = await a.api.signup(), await a.api.signup()
    apis = [a.api, b.api]
    replies = await open_dm_at_once(both_sides(apis, ann, bob))
    await assert_one_dm(apis, ann, bob, replies)
