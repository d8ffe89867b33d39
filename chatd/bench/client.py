"""A minimal WebSocket client (RFC 6455) on a plain non-blocking socket, cheap per frame.

A bench worker holds thousands of these and reads tens of thousands of frames a
second. So nothing waits per socket to read: a Reactor polls every socket with
one epoll and one trio wake-up per round, and read_nowait() returns every frame
one recv() completed, as bytes. Sends are rare by comparison and simply await
writability through trio. No extension is offered, so the server never
compresses. Server frames are unmasked; ours are masked, as the RFC requires.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import random
import select
import socket
from collections.abc import Callable
from typing import Generic, TypeVar

import trio

RECEIVE_BYTES = 256 * 1024
MAX_HANDSHAKE_BYTES = 16 * 1024
POLL_EVENTS_MAX = 1024
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
K = TypeVar("K")
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class HandshakeFailed(Exception):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status

    @property
    def refused(self) -> bool:
        """401/403/404: the server said no, and will say it again."""
        return status_code(self.status) in (401, 403, 404)


class Closed(Exception):
    """The connection ended: a close frame (code, reason) or EOF (1006)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"{code} {reason}".strip())
        self.code = code
        self.reason = reason


def status_code(status_line: str) -> int | None:
    parts = status_line.split(" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def encode_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final client frame, masked."""
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    elif size < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    mask = random.randbytes(4)
    # XOR as one big integer: far cheaper in Python than a byte loop.
    key = (mask * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        size, "little"
    )
    return header + mask + masked


class WebSocket:
    """An open connection; made by connect()."""

    __slots__ = ("_fragments", "_pending", "_sending", "closed", "sock")

    def __init__(self, sock: socket.socket, early: bytes) -> None:
        self.sock = sock
        self._pending = early  # the start of a frame not yet complete
        self._fragments: list[bytes] = []
        self._sending = False  # a send is in progress (the lock, without a lock object)
        self.closed: Closed | None = None

    async def send_text(self, payload: bytes) -> None:
        await self._send_all(encode_frame(payload))

    async def send_many(self, payloads: list[bytes]) -> None:
        """Several text frames in one write."""
        await self._send_all(b"".join(encode_frame(payload) for payload in payloads))

    async def _send_all(self, data: bytes) -> None:
        if self._sending:
            raise trio.BusyResourceError("one send at a time")
        self._sending = True
        try:
            await send_all(self.sock, data)
        finally:
            self._sending = False

    def read_nowait(self) -> list[bytes]:
        """The text payloads of every frame the next recv() completes ([] if there is
        nothing to read yet); raises Closed once the connection has ended."""
        if self.closed is not None:
            raise self.closed
        try:
            data = self.sock.recv(RECEIVE_BYTES)
        except BlockingIOError:
            return []
        except OSError as exc:
            data, self.closed = b"", Closed(1006, exc.strerror or "error")
        if not data:
            self.closed = self.closed or Closed(1006, "connection lost")
            raise self.closed
        return self.feed(data)

    def feed(self, data: bytes) -> list[bytes]:
        """The text payloads completed by these bytes; an incomplete frame is kept."""
        if self._pending:
            data = self._pending + data
        texts: list[bytes] = []
        pos, end_of_data = 0, len(data)
        while end_of_data - pos >= 2:
            first, second = data[pos], data[pos + 1]
            size, head = second & 0x7F, 2
            if size == 126:
                if end_of_data - pos < 4:
                    break
                size, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
            elif size == 127:
                if end_of_data - pos < 10:
                    break
                size, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
            if second & 0x80:
                self.closed = Closed(1002, "masked frame from the server")
                break
            end = pos + head + size
            if end > end_of_data:
                break
            payload = data[pos + head : end]
            pos = end
            opcode = first & 0x0F
            if opcode == OP_TEXT and first & 0x80:
                texts.append(payload)
            elif opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                self._fragments.append(payload)
                if first & 0x80:
                    texts.append(b"".join(self._fragments))
                    self._fragments.clear()
            elif opcode == OP_PING:
                self._control_nowait(encode_frame(payload, OP_PONG))
            elif opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.closed = Closed(code, payload[2:].decode(errors="replace"))
                self._control_nowait(encode_frame(payload[:2], OP_CLOSE))
                break
        self._pending = data[pos:] if self.closed is None else b""
        return texts

    def early_frames(self) -> list[bytes]:
        """Frames the server sent right behind its 101, read with the handshake."""
        early, self._pending = self._pending, b""
        return self.feed(early) if early else []

    def close_nowait(self, code: int = 1000) -> None:
        """Send a close frame (best effort) and close the socket."""
        if self.closed is None:
            self.closed = Closed(code, "closed by us")
            self._control_nowait(encode_frame(code.to_bytes(2, "big"), OP_CLOSE))
        close_socket(self.sock)

    def _control_nowait(self, frame: bytes) -> None:
        """A pong or a close reply, if it fits in the socket buffer right now and no
        send is halfway through a frame; else it is skipped (chatd sends no pings)."""
        if not self._sending:
            with contextlib.suppress(OSError):
                self.sock.send(frame)


def failure_reason(exc: BaseException) -> str:
    """A failed connect, as the reports count it: the HTTP status, "timeout" or the error."""
    if isinstance(exc, HandshakeFailed):
        return exc.status
    if isinstance(exc, trio.TooSlowError):
        return "timeout"
    return type(exc).__name__


async def read_until_closed(ws: WebSocket, take: Callable[[list[bytes]], None]) -> Closed | None:
    """Hand every frame to `take` as it arrives; how the server closed (None: we did)."""
    if frames := ws.early_frames():
        take(frames)
    while ws.closed is None:
        await trio.lowlevel.wait_readable(ws.sock)
        try:
            frames = ws.read_nowait()
        except Closed:
            break
        take(frames)
    return ws.closed


def close_socket(sock: socket.socket) -> None:
    if sock.fileno() >= 0:
        trio.lowlevel.notify_closing(sock)  # wakes a sender waiting on it
        sock.close()


async def send_all(sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            continue
        view = view[sent:]
    await trio.lowlevel.checkpoint_if_cancelled()


async def connect(host: str, port: int, path: str) -> WebSocket:
    """TCP connect and HTTP upgrade; raises HandshakeFailed, OSError."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.connect((host, port))
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, os.strerror(error)) from None
        key = base64.b64encode(os.urandom(16))
        await send_all(
            sock,
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\n\r\n".encode(),
        )
        received = b""
        while b"\r\n\r\n" not in received:
            if len(received) > MAX_HANDSHAKE_BYTES:
                raise HandshakeFailed("no complete HTTP answer")
            try:
                chunk = sock.recv(4096)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
                continue
            if not chunk:
                raise HandshakeFailed("connection closed during the handshake")
            received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        status, *header_lines = head.decode("latin-1").split("\r\n")
        if status_code(status) != 101:
            raise HandshakeFailed(status)
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines)
        }
        expected = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            raise HandshakeFailed("bad Sec-WebSocket-Accept")
    except BaseException:
        close_socket(sock)
        raise
    return WebSocket(sock, rest)


class Reactor(Generic[K]):
    """Reads every registered WebSocket with one epoll: each round, one trio wake-up for
    all the sockets that have data, instead of a task switch per frame.
    `on_frames(key, frames)` gets what arrived; `on_closed(key, closed)` a connection
    that ended (unregistered and closed by then)."""

    def __init__(
        self,
        on_frames: Callable[[K, list[bytes]], None],
        on_closed: Callable[[K, Closed], None],
    ) -> None:
        self._epoll = select.epoll()
        self._by_fd: dict[int, tuple[WebSocket, K]] = {}
        self._on_frames = on_frames
        self._on_closed = on_closed

    def add(self, ws: WebSocket, key: K) -> None:
        self._by_fd[ws.sock.fileno()] = (ws, key)
        self._epoll.register(ws.sock.fileno(), select.EPOLLIN)
        if frames := ws.early_frames():
            self._on_frames(key, frames)

    async def run(self) -> None:
        epoll, by_fd = self._epoll, self._by_fd
        try:
            while True:
                await trio.lowlevel.wait_readable(epoll.fileno())
                for fd, _events in epoll.poll(0, POLL_EVENTS_MAX):
                    ws, key = by_fd[fd]
                    try:
                        frames = ws.read_nowait()
                    except Closed as closed:
                        self._drop(fd, ws)
                        self._on_closed(key, closed)
                        continue
                    if frames:
                        self._on_frames(key, frames)
                    if ws.closed is not None:  # a close frame came with them
                        self._drop(fd, ws)
                        self._on_closed(key, ws.closed)
        finally:
            self.close_all()
            epoll.close()

    def _drop(self, fd: int, ws: WebSocket) -> None:
        self._epoll.unregister(fd)
        del self._by_fd[fd]
        close_socket(ws.sock)

    def close_all(self) -> int:
        """Close every connection (a close frame each, best effort); how many there were."""
        count = len(self._by_fd)
        for fd, (ws, _key) in list(self._by_fd.items()):
            self._epoll.unregister(fd)
            del self._by_fd[fd]
            ws.close_nowait()
        return count
