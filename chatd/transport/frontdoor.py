"""The listening socket: WebSocket upgrades to chatd's own path, everything else to Hypercorn.

Hypercorn's trio worker, with one change: each accepted connection's first
request head is read here. A WebSocket upgrade goes to chatd's WebSocket
handler, which owns the socket from then on; any other request goes, with
the bytes already read, to Hypercorn's own connection handler, so REST
stays on Quart-Trio exactly as before. (A WebSocket upgrade sent later on a
keep-alive connection that began with a plain request stays with Hypercorn;
browsers and the WebSocket clients we know open a fresh connection for it.)

This module is the only one that knows Hypercorn's internals (its Lifespan,
WorkerContext and TCPServer); pyproject.toml pins the Hypercorn versions it
was written against.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import ShutdownError, raise_shutdown, repr_socket_addr, wrap_app

from chatd.transport.websocket.handshake import is_upgrade, parse_head

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0
# Out of file descriptors (or memory): wait a little for connections to close.
ACCEPT_PAUSE_S = 0.1
_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

# (socket, the request head, bytes that came after it): parses the head again, so that
# nothing parsed stays referenced from this module's frames while the socket lives.
WebSocketHandler = Callable[[socket.socket, bytes, bytes], Awaitable[None]]


async def serve(
    app: Any,
    config: Config,
    websocket: WebSocketHandler,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled or shutdown_trigger returns; started() with the bound URLs.

    Mirrors hypercorn.trio.run.worker_serve for plain (non-TLS) HTTP/1.1 sockets.
    """
    framework = wrap_app(app, config.wsgi_max_body_size, None)
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(framework, config, lifespan_state)
    context = WorkerContext(None)

    async def hypercorn(stream: trio.abc.Stream) -> None:
        state = ConnectionState(lifespan_state.copy())
        # Hypercorn tells TLS streams from plain ones by duck typing; ours is plain.
        await TCPServer(framework, config, context, state, stream)  # type: ignore[arg-type]

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as connections:
            sockets = config.create_sockets().insecure_sockets
            binds = []
            for sock in sockets:
                sock.listen(config.backlog)
                sock.setblocking(False)
                binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")
            task_status.started(binds)
            try:
                async with trio.open_nursery(strict_exception_groups=True) as nursery:
                    if shutdown_trigger is not None:
                        nursery.start_soon(raise_shutdown, shutdown_trigger)
                    nursery.start_soon(raise_shutdown, context.terminate.wait)
                    for sock in sockets:
                        nursery.start_soon(_accept, sock, connections, websocket, hypercorn)
            except BaseExceptionGroup as group:
                _, others = group.split((ShutdownError, KeyboardInterrupt))
                if others is not None:
                    raise others from None
            finally:
                await context.terminated.set()
                # In-flight requests get a little longer; sockets were drained before.
                connections.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
                for sock in sockets:
                    sock.close()
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()


async def _accept(
    listener: socket.socket,
    connections: trio.Nursery,
    websocket: WebSocketHandler,
    hypercorn: Callable[[trio.abc.Stream], Awaitable[None]],
) -> None:
    """Accept every pending connection at each wake-up, each into a task of its own."""
    while True:
        await trio.lowlevel.wait_readable(listener)
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                break  # another worker process took it, or the client gave up
            except OSError as exc:
                if exc.errno not in _EXHAUSTED:
                    raise
                log.warning("accept: %s; pausing", exc)
                await trio.sleep(ACCEPT_PAUSE_S)
                break
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connections.start_soon(_route, sock, websocket, hypercorn)
        await trio.lowlevel.checkpoint()


async def _route(
    sock: socket.socket,
    websocket: WebSocketHandler,
    hypercorn: Callable[[trio.abc.Stream], Awaitable[None]],
) -> None:
    """One connection, start to end: its failure is its own.

    An error nobody foresaw in one connection's task is logged and ends that
    connection only; let through, it would cancel every other connection in the
    nursery and stop the server (a single crafted frame once did).
    """
    try:
        await _serve_connection(sock, websocket, hypercorn)
    except Exception:
        log.exception("connection ended by an unexpected error")
        sock.close()


async def _serve_connection(
    sock: socket.socket,
    websocket: WebSocketHandler,
    hypercorn: Callable[[trio.abc.Stream], Awaitable[None]],
) -> None:
    head, rest = await _read_head(sock)
    if head is None:
        sock.close()
        return
    if _is_upgrade(head):
        await websocket(sock, head, rest)
        return
    stream = _Replayed(trio.SocketStream(trio.socket.from_stdlib_socket(sock)), head + rest)
    await hypercorn(stream)


async def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    """The request head (through its blank line) and whatever came after it."""
    received = b""
    with trio.move_on_after(HEAD_TIMEOUT_S):
        while True:
            try:
                # Tried before waiting: the request has usually arrived by the time the
                # connection is accepted, and a wait costs two epoll_ctl calls.
                chunk = sock.recv(MAX_HEAD_BYTES)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
                continue
            except OSError:
                return None, b""
            if not chunk:
                return None, b""
            received += chunk
            end = received.find(b"\r\n\r\n")
            if end >= 0:
                return received[: end + 4], received[end + 4 :]
            if len(received) > MAX_HEAD_BYTES:
                # Hypercorn answers an oversized head as it sees fit.
                return received, b""
    return None, b""


def _is_upgrade(head: bytes) -> bool:
    request = parse_head(head)
    return request is not None and is_upgrade(request)


class _Replayed(trio.abc.HalfCloseableStream):
    """A socket stream whose first receive returns the bytes the front door already read."""

    def __init__(self, stream: trio.SocketStream, already_read: bytes) -> None:
        self.socket = stream.socket  # Hypercorn reads the peer's address from it
        self._stream = stream
        self._already_read = already_read

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._already_read:
            data, self._already_read = self._already_read, b""
            await trio.lowlevel.checkpoint()
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()
