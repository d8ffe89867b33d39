"""The admin API on one instance, over SQLite and PostgreSQL: who may use it, what
each action does to live sockets and to what clients can do next, and the audit log
that records it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from trio_websocket import ConnectionRejected, open_websocket_url

from chatd.closecodes import DISCONNECTED_BY_ADMIN, ROOM_CLOSED
from chatd.model import AuditEntry, RoomId
from chatd.store import Store
from chatd.transport.openapi import document
from tests.helpers import Account, Api, closed_with

ADMIN = "/api/v1/admin"


async def make_admin(store: Store, account: Account) -> None:
    """What `chatd admin create-user` does for an existing account."""
    await store.make_admin(account.email, None, AuditEntry(None, "user.create_admin", "user", None))


def ok(reply: Any, status: int = 200) -> Any:
    assert reply.status_code == status, (reply.request.method, reply.request.url, reply.text)
    return reply.json() if reply.content else None


async def refused_status(api: Api, who: Account, room_id: int) -> int:
    headers = [("Authorization", f"Bearer {who.access_token}")]
    with pytest.raises(ConnectionRejected) as refused:
        async with open_websocket_url(api.ws_url(room_id), extra_headers=headers):
            pass
    return refused.value.status_code


def admin_operations() -> list[tuple[str, str]]:
    """Every admin route of the OpenAPI document, with its ids filled in."""
    found = []
    for path, operations in document()["paths"].items():
        if path.startswith(ADMIN):
            concrete = path.replace("{user_id}", "1").replace("{room_id}", "1")
            found += [(method.upper(), concrete) for method in operations]
    return found


async def test_only_administrators_may_use_the_admin_api(
    api: Api, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    ann = await api.signup()
    operations = admin_operations()
    assert len(operations) >= 8  # instances, connections, audit, and every action
    for method, path in operations:
        body = {"admin": True} if path.endswith("/admin") else {}
        anonymous = await api.http.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
        refused = await api.http.request(method, path, json=body, headers=ann.headers)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json()["error"]["code"] == "forbidden"
    refusals = [r for r in caplog.records if r.getMessage().startswith("admin: refused")]
    assert len(refusals) == len(operations)  # each one logged, for an operator to see
    await make_admin(store, ann)
    assert ok(await api.http.get(f"{ADMIN}/instances", headers=ann.headers))["items"]


async def test_a_revoked_administrator_loses_access_with_the_token_they_hold(
    api: Api, store: Store
) -> None:
    root, bob = await api.signup(), await api.signup()
    await make_admin(store, root)
    grant = {"admin": True}
    ok(await api.http.post(f"{ADMIN}/users/{bob.id}/admin", json=grant, headers=root.headers))
    ok(await api.http.get(f"{ADMIN}/audit", headers=bob.headers))
    revoke = {"admin": False}
    ok(await api.http.post(f"{ADMIN}/users/{bob.id}/admin", json=revoke, headers=root.headers))
    assert (await api.http.get(f"{ADMIN}/audit", headers=bob.headers)).status_code == 403
    mine = await api.http.post(f"{ADMIN}/users/{root.id}/admin", json=revoke, headers=root.headers)
    assert (mine.status_code, mine.json()["error"]["code"]) == (409, "cannot_revoke_self")
    entries = ok(await api.http.get(f"{ADMIN}/audit", headers=root.headers))["items"]
    assert [(e["action"], e["actor_id"], e["target_id"]) for e in entries] == [
        ("user.revoke_admin", root.id, bob.id),
        ("user.grant_admin", root.id, bob.id),
        ("user.create_admin", None, root.id),
    ]


async def test_closing_a_room_closes_its_sockets_and_refuses_joins_and_sends_until_reopened(
    api: Api, store: Store
) -> None:
    root, ann = await api.signup(), await api.signup()
    await make_admin(store, root)
    room = await api.create_room(ann)
    rid = room["id"]
    async with api.socket(ann, rid) as ws:
        [sent] = await ws.send_many(1)
        closed = ok(await api.http.post(f"{ADMIN}/rooms/{rid}/close", headers=root.headers))
        assert closed["id"] == rid and closed["closed_at"]
        assert await closed_with(ws) == ROOM_CLOSED
    assert await refused_status(api, ann, rid) == 423
    edit = await api.http.patch(
        f"/api/v1/rooms/{rid}/messages/{sent['id']}", json={"text": "later"}, headers=ann.headers
    )
    assert (edit.status_code, edit.json()["error"]["code"]) == (423, "room_closed")
    # History stays readable, and the room says it is closed.
    assert [m["text"] for m in await api.all_history(ann, rid)] == ["m0"]
    seen = ok(await api.http.get(f"/api/v1/rooms/{rid}", headers=ann.headers))
    assert seen["closed_at"] == closed["closed_at"]

    reopened = ok(await api.http.post(f"{ADMIN}/rooms/{rid}/reopen", headers=root.headers))
    assert "closed_at" not in reopened
    async with api.socket(ann, rid) as ws:
        [again] = await ws.send_many(1)
        assert again["id"] == sent["id"] + 1
    entries = ok(await api.http.get(f"{ADMIN}/audit", headers=root.headers))["items"]
    assert [(e["action"], e["target_type"], e["target_id"]) for e in entries[:2]] == [
        ("room.reopen", "room", rid),
        ("room.close", "room", rid),
    ]


async def test_a_send_in_flight_when_the_room_closes_is_refused(api: Api, store: Store) -> None:
    root, ann = await api.signup(), await api.signup()
    await make_admin(store, root)
    rid = (await api.create_room(ann))["id"]
    # The close is committed before the socket hears of it: the store refuses the send.
    async with api.socket(ann, rid) as ws:
        await store.close_room(RoomId(rid), datetime.now(UTC), AuditEntry(None, "x", "room", rid))
        await ws.send("too late", client_id="late")
        error = await ws.error()
        assert (error["code"], error["client_id"]) == ("room_closed", "late")
    assert await api.all_history(ann, rid) == []


async def test_purging_a_room_empties_its_history_and_tells_its_readers(
    api: Api, store: Store
) -> None:
    root, ann, bob = await api.signup(), await api.signup(), await api.signup()
    await make_admin(store, root)
    rid = (await api.create_room(ann))["id"]
    async with api.socket(ann, rid) as writer, api.socket(bob, rid) as reader:
        sent = await writer.send_many(3)
        await reader.messages(3)
        reply = await api.http.put(
            f"/api/v1/rooms/{rid}/messages/{sent[0]['id']}/reactions/%F0%9F%91%8D",
            headers=bob.headers,
        )
        assert reply.status_code in (200, 201, 204), reply.text
        purged = ok(await api.http.post(f"{ADMIN}/rooms/{rid}/purge", headers=root.headers))
        assert purged == {"room_id": rid, "deleted_messages": 3, "up_to": 4}
        assert await reader.expect("room_purged") == {"room_id": rid, "up_to": 4}
        assert await api.all_history(bob, rid) == []
        # The room goes on: the next message takes the next id.
        await writer.send("after")
        assert (await reader.message())["id"] == 5
    listed = ok(await api.http.get("/api/v1/rooms", headers=bob.headers))["items"]
    assert [r["unread"] for r in listed if r["id"] == rid] == [None]  # bob never joined
    async with api.socket(bob, rid, since=0) as resumed:  # a resume replays only the rest
        assert (await resumed.message())["text"] == "after"
    [entry] = [
        e
        for e in ok(await api.http.get(f"{ADMIN}/audit", headers=root.headers))["items"]
        if e["action"] == "room.purge"
    ]
    assert entry["detail"] == {"messages": 3, "up_to": 4}


async def test_disconnecting_a_user_closes_every_socket_and_revoking_ends_their_sessions(
    api: Api, store: Store
) -> None:
    root, ann = await api.signup(), await api.signup()
    await make_admin(store, root)
    one, two = (await api.create_room(ann, "one"))["id"], (await api.create_room(ann, "two"))["id"]
    async with api.socket(ann, one) as first, api.socket(ann, two) as second:
        ok(await api.http.post(f"{ADMIN}/users/{ann.id}/disconnect", headers=root.headers))
        assert await closed_with(first) == DISCONNECTED_BY_ADMIN
        assert await closed_with(second) == DISCONNECTED_BY_ADMIN
    # Without revoke_sessions the client may come back with the tokens it has.
    async with api.socket(ann, one) as back:
        revoke = {"revoke_sessions": True}
        ok(
            await api.http.post(
                f"{ADMIN}/users/{ann.id}/disconnect", json=revoke, headers=root.headers
            )
        )
        assert await closed_with(back) == DISCONNECTED_BY_ADMIN
    assert (await api.http.get("/api/v1/users/me", headers=ann.headers)).status_code == 401
    assert await refused_status(api, ann, one) == 401
    refresh = await api.http.post("/api/v1/auth/refresh", json={"refresh_token": ann.refresh_token})
    assert refresh.status_code == 401
    entries = ok(await api.http.get(f"{ADMIN}/audit", headers=root.headers))["items"]
    assert [(e["action"], e["detail"]) for e in entries[:2]] == [
        ("user.disconnect", {"revoke_sessions": True}),
        ("user.disconnect", {"revoke_sessions": False}),
    ]
    unknown = await api.http.post(f"{ADMIN}/users/999999/disconnect", headers=root.headers)
    assert unknown.status_code == 404


async def test_connections_and_instances_show_the_live_sockets(api: Api, store: Store) -> None:
    root, ann, bob = await api.signup(), await api.signup(), await api.signup()
    await make_admin(store, root)
    one, two = (await api.create_room(ann, "one"))["id"], (await api.create_room(ann, "two"))["id"]
    async with api.socket(ann, one), api.socket(bob, one), api.socket(ann, two):
        found = ok(await api.http.get(f"{ADMIN}/connections", headers=root.headers))
        [instance] = found["instances"]
        assert instance["connections"] == 3 and not instance["truncated"]
        assert sorted((c["user_id"], c["room_id"]) for c in instance["items"]) == sorted(
            [(ann.id, one), (bob.id, one), (ann.id, two)]
        )
        assert all(c["address"].startswith("127.0.0.1:") for c in instance["items"])
        assert found["rooms"] == [
            {"room_id": one, "connections": 2, "users": sorted([ann.id, bob.id]),
             "instances": [instance["instance_id"]]},
            {"room_id": two, "connections": 1, "users": [ann.id],
             "instances": [instance["instance_id"]]},
        ]  # fmt: skip
        in_two = ok(await api.http.get(f"{ADMIN}/connections?room_id={two}", headers=root.headers))
        assert [c["user_id"] for c in in_two["instances"][0]["items"]] == [ann.id]
        bobs = ok(await api.http.get(f"{ADMIN}/connections?user_id={bob.id}", headers=root.headers))
        assert [c["room_id"] for c in bobs["instances"][0]["items"]] == [one]
        [report] = ok(await api.http.get(f"{ADMIN}/instances", headers=root.headers))["items"]
        assert report["connections"] == 3 and report["rooms_active"] == 2
        assert report["roles"] == ["api", "notifications", "ws"]
        assert report["age_s"] < 5 and "live" not in report


async def test_the_audit_log_pages_back_newest_first(api: Api, store: Store) -> None:
    root = await api.signup()
    await make_admin(store, root)
    rid = (await api.create_room(root))["id"]
    for _ in range(3):
        ok(await api.http.post(f"{ADMIN}/rooms/{rid}/close", headers=root.headers))
        ok(await api.http.post(f"{ADMIN}/rooms/{rid}/reopen", headers=root.headers))
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = ok(await api.http.get(f"{ADMIN}/audit", params=params, headers=root.headers))
        seen += [entry["id"] for entry in page["items"]]
        if page["next"] is None:
            break
        params["before"] = page["next"]
    assert len(seen) == 7 and seen == sorted(seen, reverse=True)
    bad = await api.http.get(f"{ADMIN}/audit?limit=0", headers=root.headers)
    assert bad.status_code == 422
