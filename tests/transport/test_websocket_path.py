"""chatd's own WebSocket path, at the protocol level: what a hand-rolled client may do."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url
from wsproto.frame_protocol import CloseReason, Frame, FrameProtocol, Opcode

from tests.helpers import Account, Api


class RawClient:
    """A WebSocket client built from wsproto's frame layer: it can fragment and misbehave."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.protocol = FrameProtocol(client=True, extensions=[])
        self.frames: list[Frame] = []

    async def send(self, data: bytes | bytearray) -> None:
        await self.stream.send_all(bytes(data))

    async def frame(self) -> Frame:
        with trio.fail_after(10):
            while not self.frames:
                chunk = await self.stream.receive_some(65536)
                assert chunk, "the server hung up"
                self.protocol.receive_bytes(chunk)
                self.frames.extend(self.protocol.received_frames())
        return self.frames.pop(0)

    async def event(self) -> dict[str, object]:
        """The next chat event that is not presence news."""
        while True:
            frame = await self.frame()
            assert frame.opcode == Opcode.TEXT, frame
            event = json.loads(frame.payload)
            if event["type"] != "presence":
                return event  # type: ignore[no-any-return]


@asynccontextmanager
async def raw_socket(
    api: Api, who: Account, path: str, headers: dict[str, str] | None = None
) -> AsyncIterator[tuple[int, bytes, RawClient]]:
    """(status, response head, client) for an upgrade request to `path`."""
    host, port = api.base_url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    fields = {
        "Host": host,
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        "Authorization": f"Bearer {who.access_token}",
        **(headers or {}),
    }
    head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    async with stream:
        await stream.send_all((head + "\r\n").encode())
        received = b""
        with trio.fail_after(10):
            while b"\r\n\r\n" not in received:
                received += await stream.receive_some(65536)
        response, _, rest = received.partition(b"\r\n\r\n")
        status = int(response.split(b" ")[1])
        client = RawClient(stream)
        if status != 101:
            yield status, received, client  # the head and (some of) the body
            return
        if rest:
            client.protocol.receive_bytes(rest)
            client.frames.extend(client.protocol.received_frames())
        yield status, response, client


async def test_a_fragmented_message_with_a_ping_inside_is_one_message(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with raw_socket(api, ann, f"/ws/rooms/{room['id']}") as (status, _, client):
        assert status == 101
        text = json.dumps({"type": "message", "payload": {"text": "in three parts"}})
        await client.send(client.protocol.send_data(text[:10], fin=False))
        await client.send(client.protocol.ping(b"still there?"))
        await client.send(client.protocol.send_data(text[10:20], fin=False))
        await client.send(client.protocol.send_data(text[20:], fin=True))
        pong = await client.frame()
        assert (pong.opcode, pong.payload) == (Opcode.PONG, b"still there?")
        event = await client.event()
        assert event["type"] == "message" and event["payload"]["text"] == "in three parts"  # type: ignore[index]


async def test_a_message_past_the_hard_limit_closes_with_1009(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with raw_socket(api, ann, f"/ws/rooms/{room['id']}") as (_, _, client):
        # Only the header: the server refuses before it buffers any of the payload.
        await client.send(bytes([0x82, 0xFF]) + (5 * 1024 * 1024).to_bytes(8, "big"))
        while (frame := await client.frame()).opcode != Opcode.CLOSE:
            pass
        assert frame.payload[0] == CloseReason.MESSAGE_TOO_BIG


async def test_a_fragment_that_would_pass_the_hard_limit_is_refused_from_its_header(
    api: Api,
) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with raw_socket(api, ann, f"/ws/rooms/{room['id']}") as (_, _, client):
        await client.send(client.protocol.send_data(b"x" * (3 * 1024 * 1024), fin=False))
        # Another 2 MiB would make 5: refused on this header, with none of it sent.
        await client.send(bytes([0x80, 0xFF]) + (2 * 1024 * 1024).to_bytes(8, "big"))
        while (frame := await client.frame()).opcode != Opcode.CLOSE:
            pass
        assert frame.payload[0] == CloseReason.MESSAGE_TOO_BIG


async def test_an_unmasked_frame_closes_with_1002_and_stores_nothing(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with raw_socket(api, ann, f"/ws/rooms/{room['id']}") as (_, _, client):
        payload = json.dumps({"type": "message", "payload": {"text": "sneaky"}}).encode()
        await client.send(bytes([0x81, len(payload)]) + payload)
        while (frame := await client.frame()).opcode != Opcode.CLOSE:
            pass
        assert frame.payload[0] == CloseReason.PROTOCOL_ERROR
    assert (await api.history(ann, room["id"]))["items"] == []


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/ws/nowhere", {}, 404),
        ("/ws/rooms/1", {"Sec-WebSocket-Version": "8"}, 426),
        ("/ws/rooms/1", {"Sec-WebSocket-Key": "dG9vIHNob3J0"}, 400),
    ],
)
async def test_bad_upgrades_get_an_http_error_in_chatds_shape(
    api: Api, path: str, headers: dict[str, str], status: int
) -> None:
    ann = await api.signup()
    await api.create_room(ann)
    async with raw_socket(api, ann, path, headers) as (got, response, _):
        assert got == status
        head, _, body = response.partition(b"\r\n\r\n")
        assert b"x-request-id:" in head.lower()
        assert set(json.loads(body)["error"]) == {"code", "message"}


async def test_the_batch_subprotocol_packs_queued_events_into_one_frame(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    async with api.socket(ann, room["id"]) as ws:
        await ws.send_many(5)
    url = api.ws_url(room["id"], token=ann.access_token, since=0)
    async with open_websocket_url(url, subprotocols=["chatd.batch"]) as batched:
        assert batched.subprotocol == "chatd.batch"
        # The replay is queued all at once: it arrives as one frame of five lines.
        with trio.fail_after(10):
            lines = (await batched.get_message()).split("\n")
        events = [json.loads(line) for line in lines]
        assert [e["payload"]["id"] for e in events if e["type"] == "message"] == [1, 2, 3, 4, 5]
        await batched.send_message(json.dumps({"type": "message", "payload": {"text": "six"}}))
        with trio.fail_after(10):
            while True:
                events = [json.loads(line) for line in (await batched.get_message()).split("\n")]
                if any(e["type"] == "message" for e in events):
                    break
        assert [e["payload"]["id"] for e in events if e["type"] == "message"] == [6]
    # Without the subprotocol: one event per frame, as always.
    async with open_websocket_url(api.ws_url(room["id"], token=ann.access_token, since=4)) as ws:
        assert ws.subprotocol is None
        with trio.fail_after(10):
            assert json.loads(await ws.get_message())["payload"]["id"] == 5


async def test_a_client_that_closes_first_gets_its_close_echoed(api: Api) -> None:
    ann = await api.signup()
    room = await api.create_room(ann)
    url = api.ws_url(room["id"], token=ann.access_token)
    async with open_websocket_url(url) as ws:
        await ws.aclose(code=4000, reason="bye")
        assert ws.closed is not None and ws.closed.code == 4000
    with pytest.raises(ConnectionClosed):
        await ws.get_message()
