"""/ws/rooms/{id}: a live room over WebSocket.

A connection is two sibling tasks: one reads frames and hands drafts to the
writer; one replays history after ?since= and then drains the outbox. The
one that finishes first cancels the other.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio
from quart import Blueprint, websocket

from chatd.auth.access import readable_room
from chatd.config import Settings
from chatd.errors import ChatdError, ShuttingDown, StoreUnavailable
from chatd.hub.frames import Outgoing, error_frame, message_frame, presence_frame
from chatd.hub.member import Member
from chatd.hub.room import RESYNC
from chatd.model import Draft, Signal
from chatd.service import Service
from chatd.transport.http import authenticate, query_int, room_id_param

log = logging.getLogger(__name__)

MAX_CLIENT_ID_CHARS = 64
PONG = Outgoing(json.dumps({"type": "pong", "payload": {}}))


class BadFrame(ChatdError):
    """A frame the server cannot use; answered with an error frame, the socket stays."""

    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_frame(raw: str | bytes, settings: Settings) -> dict[str, Any]:
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > settings.max_frame_bytes:
        raise BadFrame("frame_too_large", f"frames are limited to {settings.max_frame_bytes} bytes")
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadFrame("invalid_json", "the frame is not valid JSON") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise BadFrame("invalid_frame", 'a frame is a JSON object with a string "type"')
    return frame


def draft_from(frame: dict[str, Any], member: Member, settings: Settings) -> Draft:
    payload = frame.get("payload")
    if not isinstance(payload, dict):
        raise BadFrame("invalid_frame", "a message frame needs a payload object")
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadFrame("invalid_text", "payload.text must be a non-empty string")
    if len(text) > settings.max_text_chars:
        raise BadFrame("text_too_long", f"text is limited to {settings.max_text_chars} characters")
    if "\x00" in text or not _encodable(text):
        raise BadFrame("invalid_text", "text must be valid Unicode without NUL characters")
    client_id = payload.get("client_id")
    if client_id is not None and (
        not isinstance(client_id, str)
        or not 1 <= len(client_id) <= MAX_CLIENT_ID_CHARS
        or not _encodable(client_id)
        or "\x00" in client_id
    ):
        raise BadFrame(
            "invalid_client_id", f"client_id must be a string of 1 to {MAX_CLIENT_ID_CHARS} chars"
        )
    return Draft(member.room_id, member.user_id, text, client_id)


def _client_id_of(raw: str | bytes) -> dict[str, str]:
    """The client_id of a refused send, when it can be read, so the client knows which."""
    try:
        client_id = json.loads(raw)["payload"]["client_id"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return {}
    if isinstance(client_id, str) and len(client_id) <= MAX_CLIENT_ID_CHARS:
        return {"client_id": client_id}
    return {}


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # lone surrogates from a "\ud800" escape
        return False
    return True


def ws_routes(service: Service) -> Blueprint:
    bp = Blueprint("ws", __name__)
    settings, store, hub, metrics = service.settings, service.store, service.hub, service.metrics

    @bp.websocket("/ws/rooms/<int:room_id>")
    async def room_socket(room_id: int) -> None:
        # Refusals before accept() become plain HTTP answers (401/403/404).
        if service.draining.is_set():
            raise ShuttingDown("this instance is restarting; connect again (another will answer)")
        user_id = authenticate(settings.jwt_secret, websocket.headers, websocket.args)
        rid = room_id_param(room_id)
        await readable_room(store, rid, user_id)
        since = query_int(websocket.args, "since", default=None, low=0)
        member = Member(
            rid, user_id, settings.outbox_size, on_slow=metrics.slow_consumer_disconnects.inc
        )
        # Join before completing the handshake: once a client is connected,
        # every message committed from then on reaches it.
        async with hub.joined(member) as joined_at:
            await websocket.accept()
            metrics.ws_connections.inc()
            metrics.ws_connections_active.inc()
            await _tell_presence(member)
            # A since beyond what the room has committed is clamped, not trusted.
            sent = _Delivered(joined_at, min(since, joined_at) if since is not None else None)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_read_frames, member)
                    nursery.start_soon(_write_frames, member, since, sent, nursery.cancel_scope)
            finally:
                metrics.ws_connections_active.dec()
        if member.close_code is not None:
            # Waits until the peer has read what was already written before it.
            await websocket.close(member.close_code, _close_reason(member, sent.last_id))

    async def _tell_presence(member: Member) -> None:
        """Who is here already; changes follow as presence frames."""
        try:
            online = await service.presence.online(member.room_id)
        except Exception:  # presence is advisory; the backend may be away
            return
        for user_id in sorted(online):
            member.offer(presence_frame(user_id, "online"))

    async def _read_frames(member: Member) -> None:
        while True:
            raw = await websocket.receive()
            try:
                frame = parse_frame(raw, settings)
                kind = frame["type"]
                if kind == "message":
                    await service.writer.submit(draft_from(frame, member, settings), member)
                elif kind == "ping":
                    member.offer(PONG)
                elif kind == "typing":
                    # Rate-limited per user; the excess is dropped quietly (it is advisory).
                    now = trio.current_time()
                    if hub.typing_allowed(member, now, settings.typing_interval_s):
                        hub.signal_nowait(Signal(member.room_id, "typing", member.user_id))
                else:
                    raise BadFrame("unknown_type", f"unknown frame type {kind!r}")
            except ChatdError as exc:  # a bad frame, or the server going away
                member.offer(error_frame(exc.code, exc.message, **_client_id_of(raw)))

    async def _write_frames(
        member: Member, since: int | None, sent: _Delivered, done: trio.CancelScope
    ) -> None:
        try:
            if since is not None:
                try:
                    await _replay(member, sent.last_id, sent)
                except StoreUnavailable:
                    member.kick(RESYNC, "history unavailable")  # the client retries later
                    return
            async for frame in member.outbox:
                if member.close_code is not None:
                    break
                if frame.message_id is not None and frame.message_id <= sent.last_id:
                    continue  # replayed already
                await _send(frame, sent)
        finally:
            done.cancel()

    async def _replay(member: Member, since: int, sent: _Delivered) -> None:
        # Everything after joined_at reaches the outbox; the replay covers the rest.
        if sent.joined_at - since > settings.replay_cap:
            # Too much to replay here: the client pages REST history for the gap.
            sent.last_id = sent.joined_at
            await _send(
                error_frame(
                    "replay_too_large",
                    f"more than {settings.replay_cap} messages after since={since}; page back "
                    f"through GET /api/v1/rooms/{member.room_id}/messages; this connection "
                    f"is live from id {sent.joined_at + 1}",
                    live_from=sent.joined_at + 1,
                ),
                sent,
            )
            return
        for message in await service.history.between(member.room_id, since, sent.joined_at):
            await _send(message_frame(message), sent)

    async def _send(frame: Outgoing, sent: _Delivered) -> None:
        # No timeout here: Hypercorn shields its socket write, so one could not
        # interrupt it anyway (a peer that stops reading holds this task; see README).
        await websocket.send(frame.text)
        if frame.message_id is not None:
            sent.last_id = frame.message_id

    return bp


class _Delivered:
    """The newest message id this connection has written to its socket."""

    def __init__(self, joined_at: int, since: int | None) -> None:
        self.joined_at = joined_at  # the room's last id when this connection joined
        self.last_id = joined_at if since is None else since


def _close_reason(member: Member, last_id: int) -> str:
    # At most 123 bytes go in a close frame; the ids keep this well short of it.
    return f"{member.close_why}; last delivered id {last_id}; resume with ?since={last_id}"
