"""Rooms over HTTP: create, list, read, change, delete, members, history."""

from __future__ import annotations

import pytest

from tests.helpers import Api
from tests.transport.test_rest_auth import assert_error


async def test_create_and_read_a_room(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann, "  Général 🎉  ")
    assert room["name"] == "Général 🎉"
    assert room["visibility"] == "public" and room["owner_id"] == ann.id
    assert room["created_at"].endswith("Z")
    reply = await api.http.get(f"/api/v1/rooms/{room['id']}", headers=ann.headers)
    assert reply.status_code == 200 and reply.json() == room


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": 5},
        {"name": "x" * 101},
        {"name": "ok", "visibility": "secret"},
        {"name": "bad\x07name"},
    ],
)
async def test_bad_room_is_422_and_not_created(api: Api, body: dict[str, object]) -> None:
    ann = await api.signup()
    assert_error(await api.http.post("/api/v1/rooms", json=body, headers=ann.headers), 422)
    assert (await api.http.get("/api/v1/rooms", headers=ann.headers)).json()["items"] == []


async def test_unknown_room_is_404(api: Api) -> None:
    ann = await api.signup()
    for path in (
        "/api/v1/rooms/424242",
        "/api/v1/rooms/424242/messages",
        "/api/v1/rooms/99999999999999999999999",
    ):
        assert_error(await api.http.get(path, headers=ann.headers), 404, "not_found")
    assert_error(
        await api.http.patch("/api/v1/rooms/424242", json={"name": "x"}, headers=ann.headers), 404
    )
    assert_error(await api.http.delete("/api/v1/rooms/424242", headers=ann.headers), 404)


async def test_only_the_owner_may_change_or_delete(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann, "ann's")
    path = f"/api/v1/rooms/{room['id']}"
    assert_error(
        await api.http.patch(path, json={"name": "bob's"}, headers=bob.headers), 403, "forbidden"
    )
    assert_error(await api.http.delete(path, headers=bob.headers), 403)
    assert (await api.http.get(path, headers=bob.headers)).json()["name"] == "ann's"

    changed = await api.http.patch(
        path, json={"name": "renamed", "visibility": "private"}, headers=ann.headers
    )
    assert changed.status_code == 200
    assert changed.json() | {} == room | {"name": "renamed", "visibility": "private"}
    assert_error(await api.http.patch(path, json={}, headers=ann.headers), 422)
    assert_error(await api.http.patch(path, json={"visibility": "nope"}, headers=ann.headers), 422)

    deleted = await api.http.delete(path, headers=ann.headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(await api.http.get(path, headers=ann.headers), 404)


async def test_private_rooms_are_for_members(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    private = await api.create_room(ann, "secret", "private")
    public = await api.create_room(ann, "open")
    rid = private["id"]
    listed = (await api.http.get("/api/v1/rooms", headers=bob.headers)).json()["items"]
    assert [r["id"] for r in listed] == [public["id"]]
    for path in (f"/api/v1/rooms/{rid}", f"/api/v1/rooms/{rid}/messages"):
        assert_error(await api.http.get(path, headers=bob.headers), 403)

    # Only the owner adds members; then bob sees the room.
    assert_error(
        await api.http.put(f"/api/v1/rooms/{rid}/members/{bob.id}", headers=bob.headers), 403
    )
    added = await api.http.put(f"/api/v1/rooms/{rid}/members/{bob.id}", headers=ann.headers)
    assert added.status_code == 204
    assert (await api.http.get(f"/api/v1/rooms/{rid}", headers=bob.headers)).status_code == 200
    members = await api.http.get(f"/api/v1/rooms/{rid}/members", headers=bob.headers)
    assert sorted(m["user_id"] for m in members.json()["items"]) == sorted([ann.id, bob.id])

    # bob leaves; the owner cannot.
    left = await api.http.delete(f"/api/v1/rooms/{rid}/members/{bob.id}", headers=bob.headers)
    assert left.status_code == 204
    assert_error(await api.http.get(f"/api/v1/rooms/{rid}", headers=bob.headers), 403)
    assert_error(
        await api.http.delete(f"/api/v1/rooms/{rid}/members/{ann.id}", headers=ann.headers), 409
    )
    assert_error(
        await api.http.put(f"/api/v1/rooms/{rid}/members/987654", headers=ann.headers), 404
    )


async def test_room_list_pages_without_duplicates(api: Api) -> None:
    ann = await api.signup()
    created = [(await api.create_room(ann, f"r{i}"))["id"] for i in range(7)]
    seen: list[int] = []
    params: dict[str, object] = {"limit": 3}
    while True:
        page = (await api.http.get("/api/v1/rooms", params=params, headers=ann.headers)).json()
        seen += [r["id"] for r in page["items"]]
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
    assert seen == created
    for bad in ({"limit": 0}, {"limit": 201}, {"limit": "x"}, {"cursor": "abc"}):
        assert_error(await api.http.get("/api/v1/rooms", params=bad, headers=ann.headers), 422)
