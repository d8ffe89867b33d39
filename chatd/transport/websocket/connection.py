"""One accepted WebSocket: reads client messages, writes its member's frames coalesced.

A connection is one Trio task (its reader) and no more. Writing happens
elsewhere first: the Flusher takes everything a member has queued and
sends it with one non-blocking send. Only when the kernel's buffer is full
does this connection's own task take over writing (it waits until the
socket is writable, then sends what is left and what queued meanwhile),
and hands back to the Flusher when it has caught up. A slow reader thus
costs a task step only while it is slow.

The one task is woken from its wait (a cancel scope made for that wait) when
writing stalls or when the connection is asked to close.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from chatd.closecodes import INVALID_PAYLOAD, NORMAL, PROTOCOL_ERROR
from chatd.hub.frames import Outgoing, text_frame
from chatd.hub.member import Member
from chatd.transport.websocket.codec import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    ProtocolError,
    close_frame,
    control_frame,
    next_frame,
    parse_close,
)

RECEIVE_BYTES = 65536
# A close in either direction waits this long for the peer, then drops the socket.
CLOSE_TIMEOUT_S = 5.0


class PeerClosed(Exception):
    """The client closed (or dropped) the connection; `code` is what it sent, if anything."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Scheduler(Protocol):
    def schedule(self, connection: Connection) -> None: ...


class Connection:
    """The Outlet of one member: its socket, and who writes to it right now."""

    __slots__ = (
        "_assembled",
        "_fragments",
        "_held",
        "_inbox",
        "_offset",
        "_scheduler",
        "_stalled",
        "_stalled_id",
        "_waiting",
        "batched",
        "max_message_bytes",
        "member",
        "sent_id",
        "sock",
    )

    def __init__(
        self,
        sock: socket.socket,
        scheduler: Scheduler,
        *,
        max_message_bytes: int,
        batched: bool = False,
    ) -> None:
        self.sock = sock
        self.member: Member | None = None  # set once the room accepted the connection
        self.max_message_bytes = max_message_bytes
        self.batched = batched  # the client asked for several events per frame
        self.sent_id = 0  # the newest message id fully written to the socket
        self._scheduler = scheduler
        # This connection's task is writing, so the Flusher keeps off: from the start,
        # until release(), since the handshake's answer goes out before any frame.
        self._held = True
        self._stalled: memoryview | None = None  # bytes that must go out before any other
        self._stalled_id = 0  # sent_id once _stalled is out
        self._inbox: bytes | bytearray | None = None  # received, not yet parsed
        self._offset = 0  # where the next frame starts in _inbox
        self._fragments: list[bytes] | None = None  # a fragmented message so far
        self._assembled = 0  # its payload bytes
        self._waiting: trio.CancelScope | None = None

    # -- the Outlet protocol (called by the member, from other tasks) --------

    def ready(self, member: Member) -> None:
        self._scheduler.schedule(self)

    def kicked(self, member: Member) -> None:
        self._wake()

    # -- writing -------------------------------------------------------------

    def flush_nowait(self) -> None:
        """Write everything queued with one send; the Flusher calls this."""
        if self._held or self.member is None or not self.member.pending:
            return
        data, last_id = self._take_pending(self.member)
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._hold(memoryview(data), last_id)  # the reader finds out what broke
            return
        if sent == len(data):
            if last_id:
                self.sent_id = last_id
        else:
            self._hold(memoryview(data)[sent:], last_id)

    def _take_pending(self, member: Member) -> tuple[bytes, int]:
        """Everything queued, as bytes, and the newest message id among it (0 if none).
        The list is emptied, not replaced: nothing is allocated per pass but the bytes."""
        pending = member.pending
        if len(pending) == 1:  # the common case under load: one message per pass
            frame = pending[0]
            pending.clear()
            return frame.frame, frame.message_id or 0
        last_id = 0
        for frame in reversed(pending):
            if frame.message_id is not None:
                last_id = frame.message_id
                break
        data = self.encode(pending)
        pending.clear()
        return data, last_id

    def encode(self, frames: list[Outgoing]) -> bytes:
        """The bytes that carry these frames to this client."""
        if self.batched:  # several events, newline-separated, in one frame
            return text_frame(b"\n".join([frame.payload for frame in frames]))
        if len(frames) == 1:
            return frames[0].frame
        return b"".join([frame.frame for frame in frames])

    def _hold(self, rest: memoryview, last_id: int) -> None:
        self._stalled, self._stalled_id = rest, last_id
        self._held = True
        self._wake()

    async def _write_held(self) -> None:
        """Write what stalled and whatever queued meanwhile, then hand back to the Flusher."""
        while True:
            if not self._stalled:
                member = self.member
                if member is None or not member.pending or member.close_code is not None:
                    self._held = False
                    return
                data, last_id = self._take_pending(member)
                self._stalled, self._stalled_id = memoryview(data), last_id
            if not await self._send_stalled(wakeable=True):
                return  # woken: the reader decides what next

    async def _send_stalled(self, *, wakeable: bool) -> bool:
        """Send the stalled bytes; False if woken before they were all out."""
        while self._stalled:
            try:
                sent = self.sock.send(self._stalled)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise PeerClosed(1006) from exc
            self._stalled = self._stalled[sent:]
            if not self._stalled:
                self._stalled = None  # and the bytes it viewed
                if self._stalled_id:
                    self.sent_id = self._stalled_id
                return True
            if wakeable:
                if not await self._wait(trio.lowlevel.wait_writable):
                    return False
            else:
                await trio.lowlevel.wait_writable(self.sock)
        return True

    async def send_now(self, data: bytes) -> None:
        """Write `data` after anything stalled, from this connection's own task."""
        held, self._held = self._held, True
        await self._send_stalled(wakeable=False)
        self._stalled, self._stalled_id = memoryview(data), 0
        await self._send_stalled(wakeable=False)
        if not held:
            self.release()

    async def finish_writing(self) -> None:
        """Complete what is on its way (a frame cut in half is no frame); drop the rest."""
        self._held = True
        await self._send_stalled(wakeable=False)

    def release(self) -> None:
        """The handshake (and any replay) is written: the Flusher takes over."""
        self._held = False
        if self.member is not None and self.member.pending:
            self._scheduler.schedule(self)

    # -- reading -------------------------------------------------------------

    async def receive(self) -> str | bytes | None:
        """The next text or binary message; None once the member was asked to close.

        This is where an idle connection waits; the wait is written out here
        rather than in a helper, because every coroutine in the chain is one
        more object per idle socket for the collector to scan.
        """
        while True:
            member = self.member
            if member is not None and member.close_code is not None:
                return None
            if self._held:  # the Flusher could not write everything, or a pong waits
                await self._write_held()
                continue
            message = self._next_message()
            if message is not None:
                return message
            scope = self._waiting = trio.CancelScope()
            with scope:
                await trio.lowlevel.wait_readable(self.sock)
            self._waiting = None
            if not scope.cancelled_caught:
                self._read()

    def feed(self, data: bytes) -> None:
        """Bytes that arrived with the handshake request: the first frames, read already."""
        if data:
            self._inbox, self._offset = data, 0

    def _read(self) -> None:
        try:
            data = self.sock.recv(RECEIVE_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            raise PeerClosed(1006) from exc
        if not data:
            raise PeerClosed(1006)
        if self._inbox is None:
            self._inbox, self._offset = data, 0
        else:  # the rest of a frame: grow one buffer rather than copy it again and again
            if isinstance(self._inbox, bytes):
                self._inbox, self._offset = bytearray(self._inbox[self._offset :]), 0
            self._inbox += data

    def _next_message(self) -> str | bytes | None:
        """The next whole data message among the bytes received; answers pings on the way."""
        while self._inbox is not None:
            # What the message may still grow by: a fragment is refused from its header
            # as soon as it would take the message past the limit, not once it is buffered.
            room = self.max_message_bytes - self._assembled
            frame = next_frame(self._inbox, self._offset, room)
            if frame is None:
                return None
            opcode, fin, payload, self._offset = frame
            if self._offset == len(self._inbox):
                self._inbox = None
            if opcode == PING:
                self._stalled_append(control_frame(PONG, payload))
            elif opcode == CLOSE:
                raise PeerClosed(parse_close(payload))
            elif opcode != PONG:
                message = self._assemble(opcode, fin, payload)
                if message is not None:
                    return message
        return None

    def _assemble(self, opcode: int, fin: bool, payload: bytes) -> str | bytes | None:
        if opcode == CONTINUATION:
            if self._fragments is None:
                raise ProtocolError(PROTOCOL_ERROR, "a continuation frame with nothing to continue")
            self._fragments.append(payload)
        elif self._fragments is not None:
            raise ProtocolError(PROTOCOL_ERROR, "a new message before the last one finished")
        else:
            self._fragments = [bytes((opcode,)), payload]
        self._assembled += len(payload)
        if not fin:
            return None
        first, *parts = self._fragments
        self._fragments = None
        self._assembled = 0
        data = b"".join(parts)
        if first[0] == BINARY:
            return data
        assert first[0] == TEXT
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise ProtocolError(INVALID_PAYLOAD, "text frames must be UTF-8") from None

    def _stalled_append(self, frame: bytes) -> None:
        # A pong goes after whatever is already on its way; the reader writes it.
        self._stalled = memoryview(bytes(self._stalled or b"") + frame)
        self._held = True

    # -- waiting and closing -------------------------------------------------

    async def _wait(self, wait_for: Callable[[socket.socket], Awaitable[None]]) -> bool:
        """Wait for the socket; False if woken first (see _wake)."""
        scope = self._waiting = trio.CancelScope()
        with scope:
            await wait_for(self.sock)
        self._waiting = None
        return not scope.cancelled_caught

    def _wake(self) -> None:
        if self._waiting is not None:
            self._waiting.cancel()

    async def close(self, code: int, reason: str = "") -> None:
        """The closing handshake: our close frame, then the peer's, or a timeout (then
        shut(): the connection's owner does that whatever happened)."""
        with trio.move_on_after(CLOSE_TIMEOUT_S), contextlib.suppress(PeerClosed, ProtocolError):
            await self._send_close_frame(code, reason)
            await self._await_peer_close()

    async def _await_peer_close(self) -> None:
        while True:
            try:
                while self._next_message() is not None:
                    pass  # data after our close frame is not read
            except PeerClosed:
                return
            await trio.lowlevel.wait_readable(self.sock)
            self._read()

    async def answer_close(self, code: int) -> None:
        """The peer closed first: echo its code, as the protocol asks (then shut())."""
        if code in (1005, 1006):
            code = NORMAL
        with trio.move_on_after(CLOSE_TIMEOUT_S), contextlib.suppress(PeerClosed):
            await self._send_close_frame(code)

    async def _send_close_frame(self, code: int, reason: str = "") -> None:
        self._held = True  # nothing goes after a close frame
        await self._send_stalled(wakeable=False)  # a frame cut in half is no frame
        self._stalled = memoryview(close_frame(code, reason))
        await self._send_stalled(wakeable=False)

    def shut(self) -> None:
        with contextlib.suppress(OSError):  # the peer may be gone already
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
