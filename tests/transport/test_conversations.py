"""Room kinds, roles, invitations, DMs, and who may do what (docs/protocol.md), on
both stores, through the REST API and the sockets a user would have open."""

from __future__ import annotations

from typing import Any

from tests.helpers import Account, Api
from tests.transport.test_rest_auth import assert_error


async def get(api: Api, who: Account, path: str, **params: Any) -> Any:
    reply = await api.http.get(f"/api/v1{path}", params=params, headers=who.headers)
    assert reply.status_code == 200, reply.text
    return reply.json()


async def post(api: Api, who: Account, path: str, body: Any = None, status: int = 200) -> Any:
    reply = await api.http.post(f"/api/v1{path}", json=body or {}, headers=who.headers)
    assert reply.status_code == status, reply.text
    return reply.json() if reply.content else None


async def put(api: Api, who: Account, path: str, body: Any = None, status: int = 200) -> Any:
    reply = await api.http.put(f"/api/v1{path}", json=body, headers=who.headers)
    assert reply.status_code == status, reply.text
    return reply.json() if reply.content else None


async def member_ids(api: Api, who: Account, room_id: int) -> list[int]:
    return [m["user_id"] for m in (await get(api, who, f"/rooms/{room_id}/members"))["items"]]


async def test_public_rooms_are_joined_and_left_and_listed_with_membership(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann, "lobby")
    assert room["kind"] == "room" and room["role"] == "owner" and room["unread"] == 0

    listed = (await get(api, bob, "/rooms"))["items"]
    assert [(r["id"], r["role"], r["unread"]) for r in listed] == [(room["id"], None, None)]
    assert (await get(api, bob, "/rooms", joined="true"))["items"] == []

    joined = await post(api, bob, f"/rooms/{room['id']}/join")
    assert joined["role"] == "member" and joined["unread"] == 0
    assert await post(api, bob, f"/rooms/{room['id']}/join") == joined  # idempotent
    assert [r["id"] for r in (await get(api, bob, "/rooms", joined="true"))["items"]] == [
        room["id"]
    ]
    assert await member_ids(api, ann, room["id"]) == [ann.id, bob.id]

    await post(api, bob, f"/rooms/{room['id']}/leave", status=204)
    assert await member_ids(api, ann, room["id"]) == [ann.id]
    assert_error(
        await api.http.post(f"/api/v1/rooms/{room['id']}/leave", headers=ann.headers),
        409,
        "owner_cannot_leave",
    )


async def test_private_and_invite_rooms_admit_only_whom_they_should(api: Api) -> None:
    ann, bob, cat = await api.signup(), await api.signup(), await api.signup()
    private = await api.create_room(ann, "staff", "private")
    invite = await api.create_room(ann, "club", "invite")
    for room in (private, invite):
        assert_error(await api.http.get(f"/api/v1/rooms/{room['id']}", headers=bob.headers), 403)
        assert_error(
            await api.http.post(f"/api/v1/rooms/{room['id']}/join", headers=bob.headers), 403
        )
    # A private room takes members from its owner or admins, not invitations.
    assert_error(
        await api.http.post(
            f"/api/v1/rooms/{private['id']}/invites", json={"user_id": bob.id}, headers=ann.headers
        ),
        422,
    )
    await put(api, ann, f"/rooms/{private['id']}/members/{bob.id}", status=204)
    assert (await get(api, bob, f"/rooms/{private['id']}"))["role"] == "member"
    # A plain member may not add anyone.
    assert_error(
        await api.http.put(f"/api/v1/rooms/{private['id']}/members/{cat.id}", headers=bob.headers),
        403,
    )

    # An invite room: any member invites; the invitee accepts (or joins, which accepts).
    sent = await post(api, ann, f"/rooms/{invite['id']}/invites", {"user_id": bob.id}, 201)
    assert sent["room_name"] == "club" and sent["invited_by"] == ann.id
    assert_error(
        await api.http.post(
            f"/api/v1/rooms/{invite['id']}/invites", json={"user_id": bob.id}, headers=ann.headers
        ),
        409,
        "already_invited",
    )
    mine = (await get(api, bob, "/users/me/invites"))["items"]
    assert [(i["room_id"], i["user_id"]) for i in mine] == [(invite["id"], bob.id)]
    assert (await get(api, ann, f"/rooms/{invite['id']}/invites"))["items"] == mine
    accepted = await post(api, bob, f"/users/me/invites/{invite['id']}/accept")
    assert accepted["role"] == "member"
    assert (await get(api, bob, "/users/me/invites"))["items"] == []
    assert_error(
        await api.http.post(
            f"/api/v1/rooms/{invite['id']}/invites", json={"user_id": bob.id}, headers=ann.headers
        ),
        409,
        "already_member",
    )
    # bob, now a member, invites cat; cat declines; then joins with no invitation: refused.
    await post(api, bob, f"/rooms/{invite['id']}/invites", {"user_id": cat.id}, 201)
    declined = await api.http.delete(
        f"/api/v1/users/me/invites/{invite['id']}", headers=cat.headers
    )
    assert declined.status_code == 204
    assert_error(
        await api.http.post(f"/api/v1/rooms/{invite['id']}/join", headers=cat.headers), 403
    )
    # Invited again, cat joins with POST /join, which spends the invitation.
    await post(api, bob, f"/rooms/{invite['id']}/invites", {"user_id": cat.id}, 201)
    assert (await post(api, cat, f"/rooms/{invite['id']}/join"))["role"] == "member"


async def test_invitations_are_withdrawn_by_the_sender_or_a_manager_only(api: Api) -> None:
    owner, member, outsider, other = [await api.signup() for _ in range(4)]
    room = await api.create_room(owner, "club", "invite")
    await post(api, owner, f"/rooms/{room['id']}/invites", {"user_id": member.id}, 201)
    await post(api, member, f"/users/me/invites/{room['id']}/accept")
    await post(api, owner, f"/rooms/{room['id']}/invites", {"user_id": outsider.id}, 201)
    # A plain member who did not send it may not withdraw it; the owner may.
    path = f"/api/v1/rooms/{room['id']}/invites/{outsider.id}"
    assert_error(await api.http.delete(path, headers=member.headers), 403)
    assert (await api.http.delete(path, headers=owner.headers)).status_code == 204
    assert (await get(api, outsider, "/users/me/invites"))["items"] == []
    # The sender withdraws their own.
    await post(api, member, f"/rooms/{room['id']}/invites", {"user_id": other.id}, 201)
    path = f"/api/v1/rooms/{room['id']}/invites/{other.id}"
    assert (await api.http.delete(path, headers=member.headers)).status_code == 204
    assert_error(await api.http.delete(path, headers=member.headers), 404)


async def test_roles_decide_who_removes_whom_and_ownership_moves(api: Api) -> None:
    owner, admin, ann, bob = [await api.signup() for _ in range(4)]
    room = await api.create_room(owner, "team", "private")
    rid = room["id"]
    for person in (admin, ann, bob):
        await put(api, owner, f"/rooms/{rid}/members/{person.id}", status=204)
    made = await put(api, owner, f"/rooms/{rid}/members/{admin.id}/role", {"role": "admin"})
    assert made["role"] == "admin" and made["user_id"] == admin.id
    # Only the owner changes roles.
    assert_error(
        await api.http.put(
            f"/api/v1/rooms/{rid}/members/{ann.id}/role", json={"role": "admin"},
            headers=admin.headers,
        ),
        403,
    )  # fmt: skip
    assert_error(
        await api.http.put(
            f"/api/v1/rooms/{rid}/members/{ann.id}/role", json={"role": "owner"},
            headers=owner.headers,
        ),
        422,
    )  # fmt: skip
    # An admin removes a member, but not the owner; a member removes nobody.
    assert_error(
        await api.http.delete(f"/api/v1/rooms/{rid}/members/{bob.id}", headers=ann.headers), 403
    )
    removed = await api.http.delete(f"/api/v1/rooms/{rid}/members/{ann.id}", headers=admin.headers)
    assert removed.status_code == 204
    assert_error(
        await api.http.delete(f"/api/v1/rooms/{rid}/members/{owner.id}", headers=admin.headers),
        403,
    )
    assert await member_ids(api, owner, rid) == sorted([owner.id, admin.id, bob.id])
    # An admin adds members to a private room.
    await put(api, admin, f"/rooms/{rid}/members/{ann.id}", status=204)

    # The owner hands the room to bob and becomes an admin; bob may now delete it.
    handed = await post(api, owner, f"/rooms/{rid}/owner", {"user_id": bob.id})
    assert handed["owner_id"] == bob.id and handed["role"] == "admin"
    roles = {
        m["user_id"]: m["role"] for m in (await get(api, bob, f"/rooms/{rid}/members"))["items"]
    }
    assert roles == {owner.id: "admin", admin.id: "admin", ann.id: "member", bob.id: "owner"}
    assert_error(await api.http.delete(f"/api/v1/rooms/{rid}", headers=owner.headers), 403)
    assert (await post(api, owner, f"/rooms/{rid}/leave", status=204)) is None
    assert (await api.http.delete(f"/api/v1/rooms/{rid}", headers=bob.headers)).status_code == 204


async def test_a_dm_is_one_room_per_pair_with_no_owner(api: Api) -> None:
    ann, bob, cat = [await api.signup() for _ in range(3)]
    first = await post(api, ann, "/dms", {"user_id": bob.id}, 201)
    assert first["kind"] == "dm" and first["owner_id"] is None
    assert first["member_ids"] == sorted([ann.id, bob.id])
    again = await post(api, bob, "/dms", {"user_id": ann.id}, 200)
    assert again["id"] == first["id"]
    # A DM is for its members only; nobody renames, joins, deletes or leaves a 1:1 DM.
    rid = first["id"]
    assert_error(await api.http.get(f"/api/v1/rooms/{rid}", headers=cat.headers), 403)
    assert_error(await api.http.post(f"/api/v1/rooms/{rid}/join", headers=cat.headers), 403)
    assert_error(
        await api.http.patch(f"/api/v1/rooms/{rid}", json={"name": "x"}, headers=ann.headers), 403
    )
    assert_error(await api.http.delete(f"/api/v1/rooms/{rid}", headers=ann.headers), 403)
    assert_error(
        await api.http.post(f"/api/v1/rooms/{rid}/leave", headers=ann.headers),
        409,
        "cannot_leave_dm",
    )
    assert_error(
        await api.http.post("/api/v1/dms", json={"user_id": ann.id}, headers=ann.headers), 422
    )
    assert_error(
        await api.http.post("/api/v1/dms", json={"user_id": 987654}, headers=ann.headers), 404
    )
    dms = (await get(api, ann, "/rooms", kind="dm"))["items"]
    assert [d["id"] for d in dms] == [rid]
    assert (await get(api, ann, "/rooms", kind="room"))["items"] == []


async def test_a_group_dm_is_one_room_per_set_and_a_member_may_leave(
    api: Api, settings_with: Any
) -> None:
    ann, bob, cat = [await api.signup() for _ in range(3)]
    group = await post(api, ann, "/dms", {"user_ids": [bob.id, cat.id]}, 201)
    assert group["member_ids"] == sorted([ann.id, bob.id, cat.id])
    same = await post(api, cat, "/dms", {"user_ids": [ann.id, bob.id, ann.id]}, 200)
    assert same["id"] == group["id"]
    await post(api, cat, f"/rooms/{group['id']}/leave", status=204)
    assert await member_ids(api, ann, group["id"]) == sorted([ann.id, bob.id])
    assert_error(await api.http.get(f"/api/v1/rooms/{group['id']}", headers=cat.headers), 403)
    # Opening it again brings cat back.
    back = await post(api, ann, "/dms", {"user_ids": [bob.id, cat.id]}, 200)
    assert back["member_ids"] == sorted([ann.id, bob.id, cat.id])
    too_many = list(range(1000, 1010))
    assert_error(
        await api.http.post("/api/v1/dms", json={"user_ids": too_many}, headers=ann.headers), 422
    )


async def test_people_are_found_by_handle(api: Api) -> None:
    ann = await api.signup("ann.smith@example.com")
    await api.signup("annie@example.org")
    await api.signup("bob@example.com")
    found = (await get(api, ann, "/users", handle="Ann"))["items"]
    assert [u["handle"] for u in found] == ["ann.smith", "annie"]
    assert (await get(api, ann, "/users", handle="ann_"))["items"] == []  # _ is literal
    assert_error(await api.http.get("/api/v1/users?handle=a@b", headers=ann.headers), 422)
    assert_error(await api.http.get("/api/v1/users", headers=ann.headers), 422)
    me = await get(api, ann, "/users/me")
    assert me["handle"] == "ann.smith"
