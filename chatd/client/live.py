"""A room over WebSocket that survives disconnects.

Every connection asks for `?since=<last id seen>`, so the server replays what
was missed. Every send carries a client_id and stays pending until its echo
(the acknowledgement) arrives; pending sends go out again on each new
connection, and the server stores a repeated client_id only once. Reconnects
back off exponentially, with jitter.

    async with open_live_room(api, room_id, user_id=me, since=last) as room:
        client_id = await room.send("hello")
        async for event in room.events:
            ...

`room.events` ends after a `Closed` event: the room is gone, access was
lost, or the login cannot be renewed.
"""

from __future__ import annotations

import contextlib
import json
import random
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from chatd import closecodes
from chatd.client.api import ApiError, ChatApi, ChatMessage

CONNECT_TIMEOUT_S = 10.0
DISCONNECT_TIMEOUT_S = 2.0
PING_EVERY_S = 20.0
PONG_TIMEOUT_S = 10.0
EVENT_BUFFER = 256
# After a close that says back_off (the client misbehaved), wait as if this many tries failed.
BACK_OFF_ATTEMPTS = 4


@dataclass(frozen=True)
class Backoff:
    first_s: float = 0.5
    max_s: float = 15.0

    def delay_s(self, attempt: int) -> float:
        """Up to first_s * 2**attempt (capped), of which a random half."""
        ceiling = min(self.max_s, self.first_s * 2.0**attempt)
        return ceiling / 2 + random.random() * ceiling / 2


# -- what a LiveRoom reports


@dataclass(frozen=True, slots=True)
class Connected:
    since: int | None


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str
    retry_in_s: float


@dataclass(frozen=True, slots=True)
class Received:
    """A message not seen before on this LiveRoom, in id order."""

    message: ChatMessage


@dataclass(frozen=True, slots=True)
class Acked:
    """The server stored one of our sends (perhaps earlier: a resend echoes the original)."""

    client_id: str
    message: ChatMessage


@dataclass(frozen=True, slots=True)
class SendFailed:
    client_id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ServerError:
    """An error frame about no send of ours (a bad frame, say)."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Closed:
    reason: str


@dataclass(frozen=True, slots=True)
class Edited:
    """`user_id` changed message `message_id`'s text (event `id`, in sequence)."""

    id: int
    user_id: int
    message_id: int
    text: str
    edited_at: datetime


@dataclass(frozen=True, slots=True)
class Deleted:
    id: int
    user_id: int  # who deleted it: the author, an admin or the owner
    message_id: int
    deleted_at: datetime


@dataclass(frozen=True, slots=True)
class Reacted:
    id: int
    user_id: int
    message_id: int
    emoji: str
    added: bool  # False: taken back
    count: int  # the message's count for this emoji now
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MemberChanged:
    """Not sequenced: someone joined, left, was removed, or got a new role."""

    user_id: int
    change: str
    role: str | None


@dataclass(frozen=True, slots=True)
class RoomChanged:
    """Not sequenced: the room's name, visibility or owner changed."""

    room: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Purged:
    """Not sequenced: an administrator deleted the room's messages up to `up_to`."""

    up_to: int


Event = (
    Connected
    | Disconnected
    | Received
    | Acked
    | SendFailed
    | ServerError
    | Closed
    | Edited
    | Deleted
    | Reacted
    | MemberChanged
    | RoomChanged
    | Purged
)
# Sequenced events besides messages: each takes the room's next id, and ?since= replays them.
_SEQUENCED = frozenset({"message_edited", "message_deleted", "reaction"})


class _Fatal(Exception):
    """Retrying cannot help: the LiveRoom ends with Closed(reason)."""


def new_client_id() -> str:
    return "cli-" + secrets.token_hex(12)


class LiveRoom:
    """Made by open_live_room(); owns no tasks itself."""

    def __init__(
        self,
        api: ChatApi,
        room_id: int,
        user_id: int,
        since: int | None,
        backoff: Backoff,
    ) -> None:
        self.api = api
        self.room_id = room_id
        self.user_id = user_id
        self.last_id = since  # the newest message id seen; None: only live messages wanted
        self.backoff = backoff
        self.pending: dict[str, str] = {}  # client_id -> text, in send order
        self._all_acked = trio.Event()
        self._all_acked.set()
        self._ws: WebSocketConnection | None = None
        self._events_send, self.events = trio.open_memory_channel[Event](EVENT_BUFFER)

    async def send(self, text: str) -> str:
        """Queue a message: sent now if connected, else on the next connection."""
        client_id = new_client_id()
        self.pending[client_id] = text
        self._all_acked = trio.Event()
        if self._ws is not None:
            await self._transmit(self._ws, client_id, text)
        return client_id

    async def wait_all_acked(self) -> None:
        while self.pending:
            await self._all_acked.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, and reconnect after every drop, until the room is closed for good."""
        task_status.started()
        async with self._events_send:
            attempt = 0
            while True:
                try:
                    reason, then = await self._connection()
                    # It was up: start the backoff over, unless told to slow down.
                    attempt = BACK_OFF_ATTEMPTS if then == "back_off" else 0
                except _Fatal as exc:
                    await self._events_send.send(Closed(str(exc)))
                    return
                except (HandshakeError, OSError) as exc:
                    reason = _describe(exc)
                except ApiError as exc:
                    if exc.status in (401, 403, 404):
                        await self._events_send.send(Closed(str(exc)))
                        return
                    reason = str(exc)
                delay = self.backoff.delay_s(attempt)
                attempt += 1
                await self._events_send.send(Disconnected(reason, delay))
                await trio.sleep(delay)

    async def _connection(self) -> tuple[str, closecodes.Then]:
        """One connection, from handshake to drop; returns why it dropped, and what next."""
        token = await self.api.access_token()
        url = self.api.ws_url(self.room_id, since=self.last_id)
        headers = [(b"Authorization", f"Bearer {token}".encode())]
        try:
            async with open_websocket_url(
                url,
                extra_headers=headers,
                connect_timeout=CONNECT_TIMEOUT_S,
                disconnect_timeout=DISCONNECT_TIMEOUT_S,
            ) as ws:
                return await self._connected(ws)
        except ConnectionRejected as exc:
            await self._rejected(exc)
            return f"handshake refused with HTTP {exc.status_code}", "resume"

    async def _connected(self, ws: WebSocketConnection) -> tuple[str, closecodes.Then]:
        self._ws = ws
        try:
            await self._events_send.send(Connected(self.last_id))
            for client_id, text in list(self.pending.items()):
                await self._transmit(ws, client_id, text)
            reason: tuple[str, closecodes.Then] = (
                f"no answer to a ping within {PONG_TIMEOUT_S:g} s",
                "resume",
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._heartbeat, ws, nursery.cancel_scope)
                reason = await self._read(ws)
                nursery.cancel_scope.cancel()
            return reason
        finally:
            self._ws = None

    async def _rejected(self, exc: ConnectionRejected) -> None:
        message = _error_message(exc.body) or f"HTTP {exc.status_code}"
        if exc.status_code == 401:
            await self.api.refresh()  # an ApiError here means: log in again
        elif exc.status_code in (403, 404):
            raise _Fatal(message)

    async def _read(self, ws: WebSocketConnection) -> tuple[str, closecodes.Then]:
        while True:
            try:
                raw = await ws.get_message()
            except ConnectionClosed as exc:
                code = exc.reason.code if exc.reason else 1006
                then = closecodes.then_for(code)
                if then == "stop":
                    raise _Fatal(closecodes.BY_CODE[code].message) from None
                why = exc.reason.reason if exc.reason and exc.reason.reason else "no reason given"
                return f"connection closed ({code}: {why})", then
            try:
                frame = json.loads(raw)
            except ValueError:
                continue
            if isinstance(frame, dict):
                try:
                    await self._frame(frame)
                except (KeyError, TypeError, ValueError):
                    continue  # a frame this client cannot read: not worth a reconnect

    async def _frame(self, frame: dict[str, Any]) -> None:
        payload = frame.get("payload")
        if not isinstance(payload, dict):
            return
        kind = frame.get("type")
        if kind in _SEQUENCED:
            event = _sequenced(kind, payload)
            if self.last_id is None or event.id > self.last_id:
                self.last_id = event.id
                await self._events_send.send(event)
        elif kind == "member":
            role = payload.get("role")
            change = MemberChanged(
                int(payload["user_id"]),
                str(payload["change"]),
                role if isinstance(role, str) else None,
            )
            await self._events_send.send(change)
        elif kind == "room":
            await self._events_send.send(RoomChanged(payload))
        elif kind == "room_purged":
            await self._events_send.send(Purged(int(payload["up_to"])))
        elif kind == "message":
            message = ChatMessage.from_json(payload)
            is_new = self.last_id is None or message.id > self.last_id
            if is_new:
                self.last_id = message.id
                await self._events_send.send(Received(message))
            client_id = message.client_id
            if message.user_id == self.user_id and client_id in self.pending:
                assert client_id is not None
                self._settled(client_id)
                await self._events_send.send(Acked(client_id, message))
        elif kind == "error":
            code = str(payload.get("code"))
            text = str(payload.get("message"))
            client_id = payload.get("client_id")
            if isinstance(client_id, str) and client_id in self.pending:
                self._settled(client_id)
                await self._events_send.send(SendFailed(client_id, code, text))
                return
            await self._events_send.send(ServerError(code, text))

    def _settled(self, client_id: str) -> None:
        del self.pending[client_id]
        if not self.pending:
            self._all_acked.set()

    async def _heartbeat(self, ws: WebSocketConnection, done: trio.CancelScope) -> None:
        """A connection that stops answering pings is dead, even if TCP has not noticed."""
        while True:
            await trio.sleep(PING_EVERY_S)
            with trio.move_on_after(PONG_TIMEOUT_S) as waited:
                try:
                    await ws.ping()
                except ConnectionClosed:
                    return  # the reader sees it too
            if waited.cancelled_caught:
                done.cancel()
                return

    async def _transmit(self, ws: WebSocketConnection, client_id: str, text: str) -> None:
        frame = {"type": "message", "payload": {"text": text, "client_id": client_id}}
        with contextlib.suppress(ConnectionClosed):  # still pending: resent on reconnect
            await ws.send_message(json.dumps(frame))


@asynccontextmanager
async def open_live_room(
    api: ChatApi,
    room_id: int,
    *,
    user_id: int,
    since: int | None,
    backoff: Backoff | None = None,
) -> AsyncIterator[LiveRoom]:
    """A LiveRoom whose connection task lives as long as this block."""
    room = LiveRoom(api, room_id, user_id, since, backoff or Backoff())
    async with trio.open_nursery() as nursery:
        await nursery.start(room.run)
        try:
            yield room
        finally:
            nursery.cancel_scope.cancel()


def _sequenced(kind: str, payload: dict[str, Any]) -> Edited | Deleted | Reacted:
    event_id, user_id = int(payload["id"]), int(payload["user_id"])
    message_id = int(payload["message_id"])
    if kind == "message_edited":
        edited_at = datetime.fromisoformat(payload["edited_at"])
        return Edited(event_id, user_id, message_id, str(payload["text"]), edited_at)
    if kind == "message_deleted":
        deleted_at = datetime.fromisoformat(payload["deleted_at"])
        return Deleted(event_id, user_id, message_id, deleted_at)
    added = payload["action"] == "added"
    emoji, count = str(payload["emoji"]), int(payload["count"])
    at = datetime.fromisoformat(payload["created_at"]) if payload.get("created_at") else None
    return Reacted(event_id, user_id, message_id, emoji, added, count, at)


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    text = str(exc) or type(exc).__name__
    return f"{text}: {cause}" if cause is not None and str(cause) else text


def _error_message(body: bytes | None) -> str:
    try:
        return str(json.loads(body or b"")["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return ""
