"""The front door: one connection's failure never reaches the others."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import trio
from hypercorn.config import Config

from chatd.transport import frontdoor

UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def plain_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The smallest ASGI app: lifespan, and 200 "ok" for every request."""
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def websocket(sock: socket.socket, head: bytes, already_read: bytes) -> None:
    """A handler with a bug on one path; the others get an answer."""
    if b"/boom" in head:
        raise RuntimeError("a bug nobody foresaw")
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
    await stream.send_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    await stream.aclose()


async def exchange(port: int, request: bytes) -> bytes:
    """Send a request; everything the server answers until it closes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        answer = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some():
                answer += chunk
    return answer


async def test_an_error_in_one_connection_ends_only_that_connection(
    nursery: trio.Nursery,
) -> None:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    binds = await nursery.start(frontdoor.serve, plain_app, config, websocket)
    port = int(binds[0].rsplit(":", 1)[1])
    async with trio.open_nursery() as clients:  # one fails while others are open
        for _ in range(3):
            clients.start_soon(exchange, port, UPGRADE.format(path="/boom").encode())
    assert (await exchange(port, UPGRADE.format(path="/fine").encode())).startswith(b"HTTP/1.1 403")
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"http://127.0.0.1:{port}/")).text == "ok"
