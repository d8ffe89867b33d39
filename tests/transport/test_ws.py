"""Live rooms over WebSocket: handshake, broadcast, errors, idempotency, resume, slow consumers."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from chatd.config import Settings
from tests.conftest import start_server
from tests.helpers import Account, Api


async def rejected_status(url: str, headers: list[tuple[str, str]] | None = None) -> int:
    with pytest.raises(ConnectionRejected) as refused:
        async with open_websocket_url(url, extra_headers=headers or []):
            pass
    return refused.value.status_code


async def test_handshake_is_refused_with_401_403_404(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    public = await api.create_room(ann)
    private = await api.create_room(ann, "secret", "private")
    assert await rejected_status(api.ws_url(public["id"])) == 401
    assert await rejected_status(api.ws_url(public["id"], token="garbage")) == 401
    assert await rejected_status(api.ws_url(private["id"], token=bob.access_token)) == 403
    assert await rejected_status(api.ws_url(987654, token=bob.access_token)) == 404
    # The owner is a member; a token in the query works like the header.
    async with open_websocket_url(api.ws_url(private["id"], token=ann.access_token)) as ws:
        await ws.send_message(json.dumps({"type": "message", "payload": {"text": "mine"}}))
        assert json.loads(await ws.get_message())["payload"]["text"] == "mine"


async def test_a_message_reaches_every_member_sender_included(api: Api) -> None:
    people = [await api.signup() for _ in range(3)]
    room = await api.create_room(people[0])
    async with (
        api.socket(people[0], room["id"]) as a,
        api.socket(people[1], room["id"]) as b,
        api.socket(people[2], room["id"]) as c,
    ):
        await b.send("hello from b", client_id="cb-1")
        got = [await s.message() for s in (a, b, c)]
        assert got[0] == got[1] == got[2]
        message = got[0]
        assert message["text"] == "hello from b" and message["user_id"] == people[1].id
        assert message["room_id"] == room["id"] and message["client_id"] == "cb-1"
        assert message["id"] == 1 and message["created_at"].endswith("Z")
        await a.send("second")
        assert [(await s.message())["id"] for s in (a, b, c)] == [2, 2, 2]
    history = await api.all_history(people[0], room["id"])
    assert [m["text"] for m in history] == ["hello from b", "second"]
    assert history[0] == message


BAD_FRAMES = [
    ("not json at all", "invalid_json"),
    ('["a", "list"]', "invalid_frame"),
    ('{"payload": {"text": "no type"}}', "invalid_frame"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "message"}', "invalid_frame"),
    ('{"type": "message", "payload": {}}', "invalid_text"),
    ('{"type": "message", "payload": {"text": ""}}', "invalid_text"),
    ('{"type": "message", "payload": {"text": "   "}}', "invalid_text"),
    ('{"type": "message", "payload": {"text": 42}}', "invalid_text"),
    ('{"type": "message", "payload": {"text": "nul \\u0000 inside"}}', "invalid_text"),
    ('{"type": "message", "payload": {"text": "lone \\ud800"}}', "invalid_text"),
    (json.dumps({"type": "message", "payload": {"text": "x" * 4001}}), "text_too_long"),
    (json.dumps({"type": "message", "payload": {"text": "y" * 70_000}}), "frame_too_large"),
    (
        json.dumps({"type": "message", "payload": {"text": "ok", "client_id": "c" * 65}}),
        "invalid_client_id",
    ),
    (
        json.dumps({"type": "message", "payload": {"text": "ok", "client_id": 7}}),
        "invalid_client_id",
    ),
]


async def test_bad_frames_get_an_error_and_the_socket_stays_usable(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as sender, api.socket(bob, room["id"]) as watcher:
        for frame, code in BAD_FRAMES:
            await sender.send_raw(frame)
            error = await sender.error()
            assert error["code"] == code, (frame[:60], error)
            assert error["message"]
        await sender.send("x" * 4000)  # exactly the limit is fine
        assert len((await sender.message())["text"]) == 4000
        # The watcher saw only the good message: nothing bad was stored or broadcast.
        assert len((await watcher.message())["text"]) == 4000
    assert [m["id"] for m in await api.all_history(ann, room["id"])] == [1]


@pytest.mark.parametrize(
    "text",
    [
        "héllo wörld — ✓ 日本語 🎉👩‍👩‍👧 עברית",
        "'; DROP TABLE messages; --",
        "Robert'); DELETE FROM users WHERE ('1'='1",
        '<script>alert("x")</script> %s %(x)s ? $1',
    ],
)
async def test_text_round_trips_literally(api: Api, text: str) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        await ws.send(text)
        assert (await ws.message())["text"] == text
    [stored] = (await api.history(ann, room["id"]))["items"]
    assert stored["text"] == text


async def test_resend_with_the_same_client_id_is_idempotent(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    async with api.socket(bob, room["id"]) as watcher:
        async with api.socket(ann, room["id"]) as ws:
            await ws.send("only once", client_id="msg-1")
            original = await ws.message()
        assert await watcher.message() == original
        # Reconnect and resend, as a client does when it never saw its echo.
        async with api.socket(ann, room["id"]) as ws:
            await ws.send("only once", client_id="msg-1")
            assert await ws.message() == original
            await ws.send("next", client_id="msg-2")
            assert (await ws.message())["id"] == original["id"] + 1
        # The watcher never saw the duplicate: its next message is "next".
        assert (await watcher.message())["text"] == "next"
    history = await api.all_history(ann, room["id"])
    assert [m["text"] for m in history] == ["only once", "next"]


async def test_history_pages_back_once_with_no_duplicate(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        await ws.send_many(23)
    newest = await api.history(ann, room["id"], limit=10)
    assert [m["id"] for m in newest["items"]] == list(range(14, 24))
    assert newest["next"] == 14
    older = await api.history(ann, room["id"], limit=10, before=newest["next"])
    assert [m["id"] for m in older["items"]] == list(range(4, 14))
    last = await api.history(ann, room["id"], limit=10, before=older["next"])
    assert [m["id"] for m in last["items"]] == [1, 2, 3] and last["next"] is None
    walked = await api.all_history(ann, room["id"])
    assert [m["text"] for m in walked] == [f"m{i}" for i in range(23)]
    exact = await api.history(ann, room["id"], limit=23)
    assert exact["next"] is None and len(exact["items"]) == 23
    for bad in ({"limit": 0}, {"limit": 500}, {"before": "x"}, {"before": 0}):
        reply = await api.http.get(
            f"/api/v1/rooms/{room['id']}/messages", params=bad, headers=ann.headers
        )
        assert reply.status_code == 422, bad


async def test_since_replays_the_gap_then_goes_live(api: Api) -> None:
    ann, bob = await api.signup(), await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        await ws.send_many(5)
        async with api.socket(bob, room["id"], since=2) as late:
            assert [m["id"] for m in await late.messages(3)] == [3, 4, 5]
            await ws.send("live")
            assert (await late.message())["text"] == "live"
    async with api.socket(bob, room["id"], since=6) as caught_up:
        await caught_up.send("after")
        assert (await caught_up.message())["id"] == 7


async def test_since_with_concurrent_senders_has_no_gap_and_no_duplicate(api: Api) -> None:
    senders = [await api.signup() for _ in range(3)]
    reader = await api.signup()
    room = await api.create_room(senders[0])
    per_sender = 40
    total = per_sender * len(senders)

    async def send_all(who: Account, done: trio.MemorySendChannel[None]) -> None:
        async with done, api.socket(who, room["id"]) as ws:
            for i in range(per_sender):
                await ws.send(f"{who.id}-{i}", client_id=f"{who.id}-{i}")
            # Stay until all of our own are acknowledged (echoed back).
            mine = 0
            while mine < per_sender:
                mine += (await ws.message())["user_id"] == who.id

    seen: list[int] = []
    async with api.socket(reader, room["id"]) as watcher, trio.open_nursery() as nursery:
        done_send, done_recv = trio.open_memory_channel[None](0)
        async with done_send:
            for who in senders:
                nursery.start_soon(send_all, who, done_send.clone())
        # Resume mid-stream from what a first connection had seen, while sends go on.
        since = (await watcher.messages(15))[-1]["id"]
        async with api.socket(reader, room["id"], since=since) as ws:
            while len(seen) < total - since:
                seen.append((await ws.message(timeout_s=30))["id"])
        async for _ in done_recv:
            pass
    assert seen == list(range(since + 1, total + 1))


async def test_resume_replays_a_gap_longer_than_a_page_whole(
    nursery: trio.Nursery, settings_with: Callable[..., Settings]
) -> None:
    api, _ = await start_server(nursery, settings_with(replay_page=3))
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        await ws.send_many(8)
    async with api.socket(ann, room["id"], since=1) as ws:  # 7 to go: three pages
        assert [m["id"] for m in await ws.messages(7)] == [2, 3, 4, 5, 6, 7, 8]
        await ws.send("still live")
        assert (await ws.message())["id"] == 9
    async with api.socket(ann, room["id"], since=0) as ws:  # the whole room
        assert [m["id"] for m in await ws.messages(9)] == list(range(1, 10))
    await api.aclose()


async def test_room_deletion_closes_live_sockets(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        await api.http.delete(f"/api/v1/rooms/{room['id']}", headers=ann.headers)
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(10):
            await ws.next_frame()
        assert closed.value.reason.code == 4404


async def test_a_slow_consumer_is_cut_off_without_holding_up_the_room(
    nursery: trio.Nursery, settings_with
) -> None:  # type: ignore[no-untyped-def]
    settings: Settings = settings_with(outbox_size=32)
    api, _ = await start_server(nursery, settings)
    ann, slow_user, fast_user = await api.signup(), await api.signup(), await api.signup()
    room = await api.create_room(ann)
    big = "z" * 3900
    burst = 10
    async with (
        api.slow_socket(slow_user, room["id"]) as slow,
        api.socket(fast_user, room["id"]) as fast,
        api.socket(ann, room["id"]) as sender,
    ):
        # The slow socket reads nothing while the room moves on; the others keep up.
        sent = 0
        with trio.fail_after(60):
            while await api_metric(api, "chatd_slow_consumer_disconnects_total") < 1:
                for _ in range(burst):
                    await sender.send(big)
                sent += burst
                expected = list(range(sent - burst + 1, sent + 1))
                assert [m["id"] for m in await fast.messages(burst)] == expected
                await sender.messages(burst)
        received: list[int] = []
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(30):
            while True:
                received.append((await slow.message())["id"])
        assert closed.value.reason.code == 1013
        last = received[-1] if received else 0
        assert received == list(range(1, last + 1))
        assert f"since={last}" in (closed.value.reason.reason or "")
    # It resumes where it stopped and misses nothing.
    async with api.socket(slow_user, room["id"], since=last) as resumed:
        ids = [m["id"] for m in await resumed.messages(sent - last, timeout_s=30)]
        assert ids == list(range(last + 1, sent + 1))
    await api.aclose()


async def api_metric(api: Api, name: str) -> float:
    text = (await api.http.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_binary_json_frames_are_accepted(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        await ws.send_raw(json.dumps({"type": "message", "payload": {"text": "bin"}}).encode())
        assert (await ws.message())["text"] == "bin"
        await ws.send_raw(b"\xff\xfe")
        assert (await ws.error())["code"] == "invalid_json"


async def test_ping_gets_a_pong(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        await ws.send_raw('{"type": "ping"}')
        assert (await ws.next_frame())["type"] == "pong"


async def test_a_refused_send_names_its_client_id(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        await ws.send("x" * 4001, client_id="too-long-1")
        error = await ws.error()
        assert error == error | {"code": "text_too_long", "client_id": "too-long-1"}
