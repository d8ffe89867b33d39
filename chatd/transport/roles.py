"""What a process that does not play the ws role answers to a WebSocket upgrade.

The front door hands every upgrade request to a WebSocket handler; in a process without
the ws role (`chatd serve --role api`, say) this one answers 404 with chatd's error body,
as for any other route the process does not serve: a load balancer sent it to the wrong
place. Nothing is parsed beyond the head the front door read.
"""

from __future__ import annotations

import socket
from contextlib import suppress

import trio

from chatd.errors import NotFound
from chatd.transport.websocket import handshake

WRITE_TIMEOUT_S = 5.0


async def refuse_websocket(sock: socket.socket, head: bytes, already_read: bytes) -> None:
    """Answer 404 and close: this process serves no WebSockets."""
    refusal = NotFound("this instance serves no WebSockets (its roles leave out ws)")
    answer = handshake.refuse(refusal.status, refusal.as_body(), {})
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
    with trio.move_on_after(WRITE_TIMEOUT_S), suppress(trio.BrokenResourceError, OSError):
        await stream.send_all(answer)
    with suppress(OSError):
        await stream.aclose()
