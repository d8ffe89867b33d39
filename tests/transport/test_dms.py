"""Direct messages: two people have one DM, however many times and however at once
either of them opens it."""

from __future__ import annotations

from typing import Any

import trio

from tests.helpers import Account, Api

AT_ONCE_PER_SIDE = 10


async def open_dm_at_once(calls: list[tuple[Api, Account, Account]]) -> list[tuple[int, Any]]:
    """`POST /api/v1/dms {user_id}` for every (api, caller, other), all issued together:
    each reply's (status, room id), in the order of `calls`."""
    replies: list[tuple[int, Any]] = [(0, None)] * len(calls)
    go = trio.Event()

    async def open_one(index: int, api: Api, me: Account, other: Account) -> None:
        await go.wait()
        reply = await api.http.post("/api/v1/dms", json={"user_id": other.id}, headers=me.headers)
        replies[index] = (reply.status_code, reply.json().get("id"))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for index, (api, me, other) in enumerate(calls):
                nursery.start_soon(open_one, index, api, me, other)
            go.set()  # every request starts in the same scheduling round
    return replies


def both_sides(apis: list[Api], ann: Account, bob: Account) -> list[tuple[Api, Account, Account]]:
    """AT_ONCE_PER_SIDE opens from each of the pair, interleaved, spread over `apis`."""
    calls = []
    for i in range(2 * AT_ONCE_PER_SIDE):
        me, other = (ann, bob) if i % 2 == 0 else (bob, ann)
        calls.append((apis[(i // 2) % len(apis)], me, other))
    return calls


async def assert_one_dm(
    apis: list[Api], ann: Account, bob: Account, replies: list[tuple[int, Any]]
) -> None:
    """Every reply named one room (201 once, 200 after), and each of the pair, asking any
    instance, sees exactly that one DM."""
    statuses = sorted(status for status, _ in replies)
    assert statuses == [200] * (len(replies) - 1) + [201], replies
    room_ids = {room_id for _, room_id in replies}
    assert len(room_ids) == 1, replies
    (room_id,) = room_ids
    for api in apis:
        for who in (ann, bob):
            listed = await api.http.get("/api/v1/rooms", params={"kind": "dm"}, headers=who.headers)
            assert listed.status_code == 200, listed.text
            dms = listed.json()["items"]
            assert [(dm["id"], dm["kind"], dm["member_ids"]) for dm in dms] == [
                (room_id, "dm", sorted([ann.id, bob.id]))
            ], dms
            assert dms[0]["role"] == "member"


async def test_a_pair_opening_their_dm_at_once_from_both_sides_gets_one_room(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    replies = await open_dm_at_once(both_sides([api], ann, bob))
    await assert_one_dm([api], ann, bob, replies)
    # And after that, as before: the same room.
    again = await api.http.post("/api/v1/dms", json={"user_id": ann.id}, headers=bob.headers)
    assert (again.status_code, again.json()["id"]) == (200, replies[0][1])
