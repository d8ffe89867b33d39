"""A restart keeps everything: history, accounts, ids, and clients resume with ?since=."""

from __future__ import annotations

import trio

from chatd.config import Settings
from tests.conftest import start_server


async def test_history_survives_a_restart(nursery: trio.Nursery, settings: Settings) -> None:
    api, server = await start_server(nursery, settings)
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        for i in range(5):
            await ws.send(f"before restart {i}", client_id=f"c{i}")
        acked = await ws.messages(5)
    await api.aclose()
    server.cancel()

    api, _ = await start_server(nursery, settings)  # same database, new process state
    tokens = await api.login(ann.email)
    ann.access_token = tokens["access_token"]
    assert await api.all_history(ann, room["id"]) == acked
    async with api.socket(ann, room["id"], since=3) as ws:
        assert [m["id"] for m in await ws.messages(2)] == [4, 5]
        await ws.send("before restart 4", client_id="c4")  # a resend: still idempotent
        assert await ws.message() == acked[4]
        await ws.send("after restart")
        assert (await ws.message())["id"] == 6
    await api.aclose()
