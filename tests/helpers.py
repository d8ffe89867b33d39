"""A small test client: real HTTP (httpx) and real WebSockets (trio-websocket)."""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    open_websocket_url,
    wrap_client_stream,
)

PASSWORD = "correct horse battery"
# Frames a test of messages passes over: news about people and the room, not the sequence
# (a notification: a mention of this user, pushed by the notifications role).
ADVISORY = {"presence", "typing", "member", "read", "room", "notification"}
_emails = itertools.count(1)


@dataclass
class Account:
    id: int
    email: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Api:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.ws_base = base_url.replace("http://", "ws://", 1)
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def signup(self, email: str | None = None) -> Account:
        email = email or f"user{next(_emails)}@example.com"
        reply = await self.http.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert reply.status_code == 201, reply.text
        tokens = await self.login(email)
        return Account(reply.json()["id"], email, tokens["access_token"], tokens["refresh_token"])

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        reply = await self.http.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        assert reply.status_code == 200, reply.text
        return reply.json()  # type: ignore[no-any-return]

    async def create_room(
        self, owner: Account, name: str = "lobby", visibility: str = "public"
    ) -> dict[str, Any]:
        reply = await self.http.post(
            "/api/v1/rooms",
            json={"name": name, "visibility": visibility},
            headers=owner.headers,
        )
        assert reply.status_code == 201, reply.text
        return reply.json()  # type: ignore[no-any-return]

    async def history(self, who: Account, room_id: int, **params: Any) -> dict[str, Any]:
        reply = await self.http.get(
            f"/api/v1/rooms/{room_id}/messages", params=params, headers=who.headers
        )
        assert reply.status_code == 200, reply.text
        return reply.json()  # type: ignore[no-any-return]

    async def all_history(self, who: Account, room_id: int) -> list[dict[str, Any]]:
        """Walk `next` back to the start; oldest first."""
        pages: list[list[dict[str, Any]]] = []
        params: dict[str, Any] = {"limit": 200}
        while True:
            page = await self.history(who, room_id, **params)
            pages.append(page["items"])
            if page["next"] is None:
                break
            params["before"] = page["next"]
        return [m for chunk in reversed(pages) for m in chunk]

    def ws_url(self, room_id: int, *, token: str | None = None, since: int | None = None) -> str:
        query = []
        if token:
            query.append(f"token={token}")
        if since is not None:
            query.append(f"since={since}")
        return f"{self.ws_base}/ws/rooms/{room_id}" + ("?" + "&".join(query) if query else "")

    @asynccontextmanager
    async def socket(
        self, who: Account, room_id: int, *, since: int | None = None
    ) -> AsyncIterator[Socket]:
        url = self.ws_url(room_id, since=since)
        headers = [("Authorization", f"Bearer {who.access_token}")]
        async with open_websocket_url(url, extra_headers=headers) as ws:
            yield Socket(ws)

    @asynccontextmanager
    async def slow_socket(
        self,
        who: Account,
        room_id: int,
        *,
        since: int | None = None,
        receive_buffer: int = 4096,
    ) -> AsyncIterator[Socket]:
        """A socket with a small kernel receive buffer, so that not reading soon
        pushes back on the server instead of vanishing into megabytes of buffer
        (as it would to a phone on a poor network)."""
        host, port = self.base_url.removeprefix("http://").rsplit(":", 1)
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        await sock.connect((host, int(port)))
        headers = [("Authorization", f"Bearer {who.access_token}")]
        resume = "" if since is None else f"?since={since}"
        async with trio.open_nursery() as nursery:
            ws = await wrap_client_stream(
                nursery,
                trio.SocketStream(sock),
                host,
                f"/ws/rooms/{room_id}{resume}",
                extra_headers=headers,
            )
            try:
                yield Socket(ws)
            finally:
                await ws.aclose()


class Socket:
    """A WebSocket that speaks chatd frames."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, text: str, client_id: str | None = None) -> None:
        payload: dict[str, Any] = {"text": text}
        if client_id is not None:
            payload["client_id"] = client_id
        await self.ws.send_message(json.dumps({"type": "message", "payload": payload}))

    async def send_many(self, count: int) -> list[dict[str, Any]]:
        """Send "m0", "m1", ... and return their echoes: all committed when this returns."""
        for i in range(count):
            await self.send(f"m{i}")
        return await self.messages(count)

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send_message(frame)

    async def frame(self, timeout_s: float = 10) -> dict[str, Any]:
        with trio.fail_after(timeout_s):
            return json.loads(await self.ws.get_message())  # type: ignore[no-any-return]

    async def message(self, timeout_s: float = 10) -> dict[str, Any]:
        """The next chat message's payload, passing over presence and typing news."""
        frame = await self.next_frame(timeout_s)
        assert frame["type"] == "message", frame
        return frame["payload"]  # type: ignore[no-any-return]

    async def next_frame(self, timeout_s: float = 10) -> dict[str, Any]:
        """The next frame that is not advisory (presence, typing)."""
        with trio.fail_after(timeout_s):
            while True:
                frame = await self.frame()
                if frame["type"] not in ADVISORY:
                    return frame

    async def expect(self, kind: str, timeout_s: float = 10, **payload: Any) -> dict[str, Any]:
        """Wait for a frame of this type whose payload has these values; skip others."""
        with trio.fail_after(timeout_s):
            while True:
                frame = await self.frame(timeout_s)
                body = frame.get("payload", {})
                if frame["type"] == kind and all(body.get(k) == v for k, v in payload.items()):
                    return body  # type: ignore[no-any-return]

    async def messages(self, count: int, timeout_s: float = 10) -> list[dict[str, Any]]:
        with trio.fail_after(timeout_s):
            return [await self.message() for _ in range(count)]

    async def error(self) -> dict[str, Any]:
        frame = await self.next_frame()
        assert frame["type"] == "error", frame
        return frame["payload"]  # type: ignore[no-any-return]


async def closed_with(ws: Socket, timeout_s: float = 10) -> int:
    """Read on until the server closes the socket; its close code."""
    with trio.fail_after(timeout_s):
        try:
            while True:
                await ws.ws.get_message()
        except ConnectionClosed as closed:
            return closed.reason.code
