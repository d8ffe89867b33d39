"""Hundreds of WebSockets in one test: chatd's bench client (RFC 6455 on a plain
non-blocking socket, far lighter per connection than trio-websocket), one reading
task per socket, all owned by the crowd's nursery."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from chatd.bench.client import (
    Closed,
    HandshakeFailed,
    WebSocket,
    connect,
    read_until_closed,
    status_code,
)
from tests.helpers import Account, Api

CONNECT_TIMEOUT_S = 30.0


@dataclass(eq=False)
class Peer:
    """One socket of the crowd: what it received, and how it ended."""

    room_id: int
    who: Account
    ws: WebSocket
    messages: list[dict[str, Any]] = field(default_factory=list)  # payloads, in order
    errors: list[dict[str, Any]] = field(default_factory=list)  # error frames' payloads
    closed: Closed | None = None

    @property
    def ids(self) -> list[int]:
        return [message["id"] for message in self.messages]

    async def send(self, text: str, client_id: str) -> None:
        frame = {"type": "message", "payload": {"text": text, "client_id": client_id}}
        await self.ws.send_text(json.dumps(frame).encode())


def ws_path(room_id: int, who: Account, since: int | None = None) -> str:
    return f"/ws/rooms/{room_id}?token={who.access_token}" + (
        f"&since={since}" if since is not None else ""
    )


def host_port(api: Api) -> tuple[str, int]:
    host, port = api.base_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


async def try_connect(api: Api, path: str) -> WebSocket | str:
    """The socket, or what happened instead: "refused <status line>" (the server
    answered no), "reset: …" (closed without an answer) or "hang" (no answer in time)."""
    try:
        with trio.fail_after(CONNECT_TIMEOUT_S):
            return await connect(*host_port(api), path)
    except HandshakeFailed as exc:
        if status_code(exc.status) is not None:
            return f"refused {exc.status}"
        return f"reset: {exc.status}"
    except OSError as exc:
        return f"reset: {exc.strerror or type(exc).__name__}"
    except trio.TooSlowError:
        return "hang"


class Crowd:
    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.peers: list[Peer] = []
        self._changed = trio.Event()  # set by every frame and close

    def add(self, room_id: int, who: Account, ws: WebSocket) -> Peer:
        peer = Peer(room_id, who, ws)
        self.peers.append(peer)
        self._nursery.start_soon(self._read, peer)
        return peer

    async def join(self, api: Api, room_id: int, who: Account) -> Peer:
        outcome = await try_connect(api, ws_path(room_id, who))
        assert not isinstance(outcome, str), outcome
        return self.add(room_id, who, outcome)

    async def wait_until(self, done: Callable[[], bool], timeout_s: float = 20) -> None:
        """Until done() holds, checked after every frame or close."""
        with trio.fail_after(timeout_s):
            while not done():
                self._changed = trio.Event()
                await self._changed.wait()

    async def _read(self, peer: Peer) -> None:
        ws = peer.ws
        try:
            peer.closed = await read_until_closed(ws, partial(self._take, peer))
            self._changed.set()
        finally:
            ws.close_nowait()

    def _take(self, peer: Peer, frames: list[bytes]) -> None:
        for raw in frames:
            frame = json.loads(raw)
            if frame["type"] == "message":
                peer.messages.append(frame["payload"])
            elif frame["type"] == "error":
                peer.errors.append(frame["payload"])
        self._changed.set()
