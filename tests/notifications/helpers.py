"""What the notifications tests share: sending through a socket, waiting for the consumer."""

from __future__ import annotations

from typing import Any

import trio

from tests.helpers import Account, Api

WAIT_S = 15.0


async def send(api: Api, who: Account, room_id: int, text: str) -> dict[str, Any]:
    """Send a message over a socket of its own: the committed message (its echo)."""
    async with api.socket(who, room_id) as sock:
        await sock.send(text)
        return await sock.message()


async def notifications(api: Api, who: Account, **params: Any) -> dict[str, Any]:
    reply = await api.http.get("/api/v1/notifications", params=params, headers=who.headers)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


async def wait_for_notifications(
    api: Api, who: Account, count: int, **params: Any
) -> list[dict[str, Any]]:
    """The user's notifications once there are `count` (newest first). The consumer works
    in another task or process and tells nobody but the user: ask until it has."""
    items: list[dict[str, Any]] = []
    with trio.fail_after(WAIT_S):
        while len(items := (await notifications(api, who, **params))["items"]) < count:  # noqa: ASYNC110
            await trio.sleep(0.05)
    assert len(items) == count, items
    return items


async def wait_online(api: Api, who: Account, watcher: Account, room_id: int) -> None:
    """Until presence says `who` is online (in room_id, as `watcher` sees it): the
    heartbeat that says so also says they are online anywhere."""
    with trio.fail_after(WAIT_S):
        while True:
            reply = await api.http.get(f"/api/v1/rooms/{room_id}/presence", headers=watcher.headers)
            assert reply.status_code == 200, reply.text
            if who.id in {entry["user_id"] for entry in reply.json()["items"]}:
                return
            await trio.sleep(0.05)
