"""/ws/rooms/{id}: a live room over WebSocket.

A connection is one task: it checks the handshake (refusals are plain HTTP
401/403/404), joins the room before completing it, replays history after
?since=, then reads frames and hands drafts to the writer. What the room
sends it is written by the Flusher (see transport/websocket/), coalesced.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import Any, NamedTuple

import trio
from opentelemetry.trace import SpanKind

from chatd.auth.access import readable_room
from chatd.closecodes import NORMAL, POLICY_VIOLATION, ROOM_FAILED, SLOW_CONSUMER
from chatd.config import Settings
from chatd.errors import (
    ChatdError,
    Forbidden,
    NotFound,
    RoomClosed,
    ShuttingDown,
    StoreUnavailable,
)
from chatd.hub.frames import PONG, Outgoing, error_frame, message_frame, presence_frame
from chatd.hub.member import Member
from chatd.logs import request_id_var, user_id_var
from chatd.model import Draft, RoomId, Signal, UserId
from chatd.service import Service
from chatd.tracing import TRACE, annotate, current_traceparent, span, span_from
from chatd.transport.context import HEADER, clean_request_id, printable
from chatd.transport.http import (
    MAX_JSON_DEPTH,
    bearer_token,
    query_int,
    room_id_param,
    too_deep,
)
from chatd.transport.text import encodable, text_problem
from chatd.transport.websocket import handshake
from chatd.transport.websocket.codec import ProtocolError
from chatd.transport.websocket.connection import CLOSE_TIMEOUT_S, Connection, PeerClosed
from chatd.transport.websocket.flusher import Flusher

access_log = logging.getLogger("chatd.access")

MAX_CLIENT_ID_CHARS = 64
MAX_TYPE_CHARS = 32  # the longest known is 7; an unknown one is echoed in the error
# Frames between max_frame_bytes and this get an error frame; past it the socket closes (1009).
HARD_FRAME_LIMIT = 4 * 1024 * 1024
# A ?since= replay is written this much at a time; the outbox is looked at in between.
REPLAY_CHUNK_BYTES = 64 * 1024
_TCP_NOTSENT_LOWAT: int | None = getattr(socket, "TCP_NOTSENT_LOWAT", None)
# A client that offers this subprotocol gets several events per frame, newline-separated.
BATCH_SUBPROTOCOL = "chatd.batch"
ROOM_PATH = re.compile(r"/ws/rooms/(\d+)")


class BadFrame(ChatdError):
    """A frame the server cannot use; answered with an error frame, the socket stays."""

    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Refused(ChatdError):
    """A handshake that is not a WebSocket one we can accept (bad version or key)."""

    def __init__(self, status: int, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.status = status
        self.code = "bad_handshake" if status == 400 else "upgrade_required"
        self._headers = headers

    @property
    def headers(self) -> dict[str, str]:
        return self._headers


def parse_frame(raw: str | bytes, settings: Settings) -> dict[str, Any]:
    try:
        frame = json.loads(_frame_text(raw, settings))
    except ValueError:
        raise BadFrame("invalid_json", "the frame is not valid JSON") from None
    if (
        not isinstance(frame, dict)
        or not isinstance(kind := frame.get("type"), str)
        or len(kind) > MAX_TYPE_CHARS
    ):
        raise BadFrame("invalid_frame", 'a frame is a JSON object with a short string "type"')
    return frame


def _frame_text(raw: str | bytes, settings: Settings) -> str:
    """The frame as text, once it is known to be cheap to parse: small and shallow."""
    limit = settings.max_frame_bytes
    # A character is one UTF-8 byte or more: a frame too long in characters is not encoded.
    if len(raw) > limit or (
        isinstance(raw, str)
        and not raw.isascii()
        and len(raw.encode("utf-8", "surrogatepass")) > limit
    ):
        raise BadFrame("frame_too_large", f"frames are limited to {limit} bytes")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode()
        except UnicodeDecodeError:
            raise BadFrame("invalid_json", "a binary frame must hold UTF-8 JSON") from None
    if too_deep(raw):
        raise BadFrame("frame_too_deep", f"frames nest at most {MAX_JSON_DEPTH} levels deep")
    return raw


def draft_from(frame: dict[str, Any], member: Member, settings: Settings) -> Draft:
    payload = frame.get("payload")
    if not isinstance(payload, dict):
        raise BadFrame("invalid_frame", "a message frame needs a payload object")
    text = payload.get("text")
    if (problem := text_problem(text, settings.max_text_chars, "payload.text")) is not None:
        raise BadFrame(*problem)
    assert isinstance(text, str)
    client_id = payload.get("client_id")
    if client_id is not None and not _valid_client_id(client_id):
        raise BadFrame(
            "invalid_client_id", f"client_id must be a string of 1 to {MAX_CLIENT_ID_CHARS} chars"
        )
    return Draft(member.room_id, member.user_id, text, client_id)


def _client_id_of(raw: str | bytes, settings: Settings) -> dict[str, str]:
    """The client_id of a refused send, when it can be read, so the client knows which.

    Read within parse_frame's bounds (an oversized or deep frame is never parsed),
    and only a valid one: it goes back in the error frame, which must encode."""
    try:
        client_id = json.loads(_frame_text(raw, settings))["payload"]["client_id"]
    except (BadFrame, ValueError, KeyError, TypeError):
        return {}
    return {"client_id": client_id} if _valid_client_id(client_id) else {}


def _valid_client_id(client_id: object) -> bool:
    return (
        isinstance(client_id, str)
        and 1 <= len(client_id) <= MAX_CLIENT_ID_CHARS
        and "\x00" not in client_id
        and encodable(client_id)
    )


class RoomSockets:
    """The WebSocket handler the front door calls with each upgrade request.

    While a connection idles, its task waits in Connection.receive() called
    from __call__, and nothing else of it is alive but the Connection and its
    Member: the request head is parsed in _admit() and dropped, and the
    request and user ids are in context variables only while they are
    needed. A full collection scans every object each idle socket keeps.
    """

    def __init__(self, service: Service, flusher: Flusher) -> None:
        self._service = service
        self._settings = service.settings
        self._flusher = flusher
        self._max_message_bytes = max(HARD_FRAME_LIMIT, service.settings.max_frame_bytes * 2)

    async def __call__(self, sock: socket.socket, head: bytes, already_read: bytes) -> None:
        started = time.perf_counter()
        connection = Connection(sock, self._flusher, max_message_bytes=self._max_message_bytes)
        try:
            if TRACE.on:
                admitted = await self._admit_traced(connection, head)
            else:
                admitted = await self._admit(connection, head)
            if admitted is None:
                return
            member, replay_to, ids = admitted
            del admitted
            service, metrics = self._service, self._service.metrics
            ended: _Ended | None = None
            metrics.ws_connections.inc()
            metrics.ws_connections_active.inc()
            try:
                await self._go_live(connection, member, replay_to, already_read)
                while (raw := await connection.receive()) is not None:
                    try:
                        await self._handle(raw, member)
                    except ChatdError as exc:  # a bad frame, or the server going away
                        member.offer(
                            error_frame(exc.code, exc.message, **_client_id_of(raw, self._settings))
                        )
            except (PeerClosed, ProtocolError) as exc:
                # Only what the close needs: the exception's traceback would hold this
                # frame, and so the whole connection, in a cycle until a full collection.
                ended = _Ended(isinstance(exc, PeerClosed), exc.code, getattr(exc, "why", ""))
            finally:
                metrics.ws_connections_active.dec()
                service.hub.leave(member)
            await self._close(connection, member, ended)
        finally:
            connection.shut()
            # Member and Connection refer to each other: undo it, so that they are freed
            # when this task ends rather than by a full collection much later.
            connection.member = None
        elapsed_s = time.perf_counter() - started
        access_log.info("websocket %s: closed after %.1f s", ids[0], elapsed_s, extra=ids[1])

    async def _admit_traced(
        self, connection: Connection, head: bytes
    ) -> tuple[Member, int | None, tuple[str, dict[str, object]]] | None:
        """_admit() in a span of its own, which continues the client's trace when the
        upgrade request carries a traceparent header."""
        request = handshake.parse_head(head)
        assert request is not None  # the front door parsed it before
        attributes = {"http.request.method": request.method, "url.path": printable(request.path)}
        with span_from(
            request.headers.get("traceparent"), "ws.handshake", attributes, kind=SpanKind.SERVER
        ) as handshake_span:
            del request
            admitted = await self._admit(connection, head)
            if admitted is not None:
                member = admitted[0]
                handshake_span.set_attributes(
                    {
                        "chatd.room.id": member.room_id,
                        "user.id": member.user_id,
                        "http.response.status_code": 101,
                    }
                )
            return admitted

    async def _admit(
        self, connection: Connection, head: bytes
    ) -> tuple[Member, int | None, tuple[str, dict[str, object]]] | None:
        """Check the upgrade request, join the room and complete the handshake.

        Returns the member, the id to replay up to (with ?since=) and what the
        closing log line needs; None once a refusal (plain HTTP) was answered.
        """
        request = handshake.parse_head(head)
        assert request is not None  # the front door parsed it before
        request_id = clean_request_id(request.headers.get(HEADER))
        request_token = request_id_var.set(request_id)  # for what is logged meanwhile
        user_token = None
        path = printable(request.path)
        try:
            access_log.info("websocket %s: opening", path)
            try:
                room_id, user_id, signed_in_at = self._authenticate(request)
                user_token = user_id_var.set(user_id)
                member, since = await self._check(
                    connection, request, room_id, user_id, signed_in_at
                )
            except ChatdError as exc:
                extra = {HEADER: request_id, **exc.headers}
                if TRACE.on:
                    annotate({"http.response.status_code": exc.status, "error.type": exc.code})
                with trio.move_on_after(CLOSE_TIMEOUT_S), suppress(OSError, PeerClosed):
                    await connection.send_now(handshake.refuse(exc.status, exc.as_body(), extra))
                access_log.info("websocket %s: refused %s", path, exc.status)
                return None
            subprotocol = BATCH_SUBPROTOCOL if connection.batched else None
            # Join before completing the handshake: once a client is connected,
            # every message committed from then on reaches it.
            joined_at = await self._service.hub.join(member)
            try:
                await connection.send_now(
                    handshake.accept(request, subprotocol, {HEADER: request_id})
                )
            except BaseException:
                self._service.hub.leave(member)
                raise
            # A since beyond what the room has committed is clamped, not trusted.
            connection.sent_id = joined_at if since is None else min(since, joined_at)
            replay_to = None if since is None else joined_at
            return member, replay_to, (path, {"request_id": request_id, "user_id": user_id})
        finally:
            if user_token is not None:
                user_id_var.reset(user_token)
            request_id_var.reset(request_token)

    def _authenticate(self, request: handshake.Request) -> tuple[RoomId, UserId, int]:
        """The room asked for, who asks and when their token was issued, from checks
        that need no I/O."""
        if (problem := handshake.problem(request)) is not None:
            raise _Refused(*problem)
        if not handshake.origin_allowed(request, self._settings.allowed_origins):
            # Another site's page, in a browser: it would act as the user (docs/security.md).
            origin = printable(request.headers.get("origin") or "")
            raise Forbidden(f"pages from {origin} may not connect here (CHATD_ALLOWED_ORIGINS)")
        matched = ROOM_PATH.fullmatch(request.path)
        if matched is None:
            raise NotFound(f"no WebSocket route {printable(request.path)}")
        if self._service.draining.is_set():
            raise ShuttingDown("this instance is restarting; connect again (another will answer)")
        token = bearer_token(request.headers, request.query)
        # Refuses tokens issued before a password change too (no I/O).
        user_id, signed_in_at = self._service.accounts.verify_access_claims(token)
        return room_id_param(int(matched.group(1))), user_id, signed_in_at

    async def _check(
        self,
        connection: Connection,
        request: handshake.Request,
        room_id: RoomId,
        user_id: UserId,
        signed_in_at: int,
    ) -> tuple[Member, int | None]:
        settings = self._settings
        room = await readable_room(self._service.store, room_id, user_id)
        if room.closed_at is not None:
            raise RoomClosed(f"room {room_id} was closed by an administrator")
        since = query_int(request.query, "since", default=None, low=0)
        connection.batched = BATCH_SUBPROTOCOL in handshake.offered_subprotocols(request)
        member = Member(
            room_id, user_id, settings.outbox_size, outlet=connection, signed_in_at=signed_in_at
        )
        connection.member = member
        return member, since

    async def _go_live(
        self, connection: Connection, member: Member, replay_to: int | None, already_read: bytes
    ) -> None:
        """Who is online, the replay after ?since=, then the Flusher writes what comes."""
        await self._tell_presence(member)
        if replay_to is not None and not await self._replay(connection, member, replay_to):
            member.kick(ROOM_FAILED, "history unavailable")  # the client retries later
        connection.release()
        connection.feed(already_read)

    async def _handle(self, raw: str | bytes, member: Member) -> None:
        service, settings = self._service, self._settings
        frame = parse_frame(raw, settings)
        kind = frame["type"]
        if kind == "message":
            sends = service.limits.sends
            if not (wait_s := sends.wait_s(member.user_id)):
                if TRACE.on:
                    await self._submit_traced(draft_from(frame, member, settings), member)
                else:
                    await service.writer.submit(draft_from(frame, member, settings), member)
            elif sends.refused_too_often(member.user_id):
                member.kick(POLICY_VIOLATION, "too many messages, again and again")
            else:  # refused; the socket stays, and the client knows when to send again
                payload = frame.get("payload")
                client_id = payload.get("client_id") if isinstance(payload, dict) else None
                extra = {"client_id": client_id} if _valid_client_id(client_id) else {}
                message = f"too many messages; wait {wait_s:.1f} s"
                member.offer(
                    error_frame("rate_limited", message, retry_after=round(wait_s, 3), **extra)
                )
        elif kind == "ping":
            member.offer(PONG)
        elif kind == "typing":
            # Rate-limited per user; the excess is dropped quietly (it is advisory).
            now = trio.current_time()
            if service.hub.typing_allowed(member, now, settings.typing_interval_s):
                service.hub.signal_nowait(Signal(member.room_id, "typing", member.user_id))
        else:
            raise BadFrame("unknown_type", f"unknown frame type {kind!r}")

    async def _submit_traced(self, draft: Draft, member: Member) -> None:
        """submit(), in the span that starts the message's trace: the draft carries it on
        (to the writer, the outbox, the bus and every instance's rooms)."""
        attributes: dict[str, str | int] = {
            "chatd.room.id": member.room_id,
            "user.id": member.user_id,
        }
        if draft.client_id is not None:
            attributes["chatd.message.client_id"] = draft.client_id
        with span("message.receive", attributes, kind=SpanKind.SERVER):
            traced = replace(draft, traceparent=current_traceparent())
            await self._service.writer.submit(traced, member)

    async def _close(self, connection: Connection, member: Member, ended: _Ended | None) -> None:
        if ended is not None and ended.by_peer:
            await connection.answer_close(ended.code)
        elif ended is not None:  # the peer broke the protocol
            await connection.close(ended.code, ended.why)
        else:  # asked to close: room gone, slow, restarting, resync
            if member.close_code == SLOW_CONSUMER:
                self._service.metrics.slow_consumer_disconnects.inc()
            with trio.move_on_after(CLOSE_TIMEOUT_S), suppress(PeerClosed):
                await connection.finish_writing()  # so the reason names what was written
            reason = _close_reason(member.close_why, connection.sent_id)
            await connection.close(member.close_code or NORMAL, reason)

    async def _tell_presence(self, member: Member) -> None:
        """Who is here already; changes follow as presence frames."""
        try:
            online = await self._service.presence.online_for_joiner(member.room_id)
        except Exception:  # presence is advisory; the backend may be away
            return
        for user_id in sorted(online):
            member.offer(presence_frame(user_id, "online"))

    async def _replay(self, connection: Connection, member: Member, joined_at: int) -> bool:
        """Every message after since, read a page at a time and written as the socket
        drains; the live ones the room queued meanwhile follow. False if history could
        not be read.

        A long replay in a busy room could fill the outbox with live messages, and the
        socket would be closed as a slow consumer only to resume and replay again. So
        once they fill half of it they are dropped, and the replay goes on through the
        newest of them: they are in the store. Presence and typing frames stay.
        """
        history, page_size = self._service.history, self._settings.replay_page
        pending, half_full = member.pending, member.outbox_size // 2
        until = joined_at
        with _unsent_at_most(connection.sock, REPLAY_CHUNK_BYTES):
            while connection.sent_id < until:
                try:
                    page = await history.page(member.room_id, connection.sent_id, until, page_size)
                except StoreUnavailable:
                    return False
                if not page:
                    break  # the room's messages are gone (it was deleted): its close follows
                frames = [message_frame(message) for message in page]
                # In chunks, so that the outbox is looked at often however slow the socket.
                for start, end in _spans(frames, REPLAY_CHUNK_BYTES):
                    if member.close_code is not None:
                        return True
                    await connection.send_now(connection.encode(frames[start:end]))
                    connection.sent_id = page[end - 1].id
                    if len(pending) >= half_full:
                        until = max(until, _drop_messages(pending, up_to=None))
        _drop_messages(pending, up_to=connection.sent_id)  # sent from the store already
        return True


class _Ended(NamedTuple):
    """How the connection ended, when it was not asked to: closed by the peer, or broken."""

    by_peer: bool
    code: int
    why: str


@contextmanager
def _unsent_at_most(sock: socket.socket, max_bytes: int) -> Iterator[None]:
    """Inside, the kernel takes about max_bytes not yet sent (Linux's TCP_NOTSENT_LOWAT),
    rather than megabytes of autotuned buffer that then drain by half before a blocked
    writer wakes: the replay waits on its reader, and looks at the outbox often."""
    option = _TCP_NOTSENT_LOWAT
    try:
        if option is None:  # not Linux
            raise OSError
        before = sock.getsockopt(socket.IPPROTO_TCP, option)
        sock.setsockopt(socket.IPPROTO_TCP, option, max_bytes)
    except OSError:  # not TCP either
        yield
        return
    try:
        yield
    finally:
        with suppress(OSError):  # the peer may be gone
            sock.setsockopt(socket.IPPROTO_TCP, option, before)


def _spans(frames: list[Outgoing], max_bytes: int) -> Iterator[tuple[int, int]]:
    """(start, end) of consecutive runs of frames, each run about max_bytes or less."""
    start, size = 0, 0
    for end, frame in enumerate(frames, 1):
        size += len(frame.payload)
        if size >= max_bytes or end == len(frames):
            yield start, end
            start, size = end, 0


def _drop_messages(pending: list[Outgoing], *, up_to: int | None) -> int:
    """Remove the queued message frames with ids up to `up_to` (all if None), keeping
    the others in order; the newest id removed, or 0."""
    dropped = [f.message_id for f in pending if f.message_id is not None]
    if up_to is not None:
        dropped = [message_id for message_id in dropped if message_id <= up_to]
    if not dropped:
        return 0
    newest = dropped[-1]  # a room queues its messages in id order
    pending[:] = [f for f in pending if f.message_id is None or f.message_id > newest]
    return newest


def _close_reason(why: str, last_id: int) -> str:
    # At most 123 bytes go in a close frame; the ids keep this well short of it.
    return f"{why}; last delivered id {last_id}; resume with ?since={last_id}"
