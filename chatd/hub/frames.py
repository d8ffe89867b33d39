"""Server-to-client WebSocket frames, encoded once and shared by every recipient.

A room message goes to every member as the same bytes: its JSON is made
once, and so is its whole WebSocket frame (server frames are unmasked, so
the header and payload are the same for everyone). A member's writer then
only joins the frames it has queued and writes them with one send.
"""

from __future__ import annotations

import functools
import json
import struct
from typing import Any

from chatd.model import Message, Room

_TEXT = 0x81  # FIN + text opcode


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented WebSocket text frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((_TEXT, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", _TEXT, 126, size) + payload
    return struct.pack("!BBQ", _TEXT, 127, size) + payload


class Outgoing:
    """An encoded event; `message_id` is set for room messages (used to skip duplicates).

    A plain class with slots rather than a dataclass: one is made per event
    and then shared, so it should be as small and cheap as it can be.
    """

    __slots__ = ("_frame", "message_id", "payload")

    def __init__(self, payload: bytes, message_id: int | None = None) -> None:
        self.payload = payload  # the event's JSON, UTF-8
        self.message_id = message_id
        self._frame: bytes | None = None

    @property
    def text(self) -> str:
        return self.payload.decode()

    @property
    def frame(self) -> bytes:
        """The whole WebSocket frame, made by the first recipient's writer, reused by the rest."""
        frame = self._frame
        if frame is None:
            frame = self._frame = text_frame(self.payload)
        return frame


def _encode(kind: str, payload: dict[str, Any]) -> bytes:
    return json.dumps(
        {"type": kind, "payload": payload}, ensure_ascii=False, separators=(",", ":")
    ).encode()


def _message_payload(message: Message) -> bytes:
    # The message's own JSON (made once, shared with the bus) spliced in: the same
    # characters as _encode(message.frame_type, message.to_json()).
    return f'{{"type":"{message.frame_type}","payload":{message.encoded}}}'.encode()


def message_frame(message: Message) -> Outgoing:
    """Any entry of the room's sequence: a message, an edit, a deletion, a reaction."""
    return Outgoing(_message_payload(message), message.id)


def echo_frame(message: Message) -> Outgoing:
    """The original message again, for the sender of a duplicate: never skipped."""
    return Outgoing(_message_payload(message))


# Typing and presence frames depend only on their arguments: each is made once and
# shared (a joiner of a room of a hundred is sent a hundred presence frames).
@functools.lru_cache(maxsize=16_384)
def typing_frame(user_id: int) -> Outgoing:
    return Outgoing(_encode("typing", {"user_id": user_id}))


@functools.lru_cache(maxsize=32_768)
def presence_frame(user_id: int, status: str) -> Outgoing:
    return Outgoing(_encode("presence", {"user_id": user_id, "status": status}))


def read_frame(room_id: int, user_id: int, message_id: int) -> Outgoing:
    return Outgoing(
        _encode("read", {"room_id": room_id, "user_id": user_id, "message_id": message_id})
    )


def member_frame(room_id: int, user_id: int, change: str, role: str | None) -> Outgoing:
    payload: dict[str, Any] = {"room_id": room_id, "user_id": user_id, "change": change}
    if role is not None:
        payload["role"] = role
    return Outgoing(_encode("member", payload))


def room_frame(room: Room) -> Outgoing:
    return Outgoing(_encode("room", room.to_json()))


def purged_frame(room_id: int, up_to: int) -> Outgoing:
    """An administrator deleted the room's messages up to this id: clients drop them."""
    return Outgoing(_encode("room_purged", {"room_id": room_id, "up_to": up_to}))


def error_frame(code: str, text: str, **extra: Any) -> Outgoing:
    return Outgoing(_encode("error", {"code": code, "message": text, **extra}))


PONG = Outgoing(_encode("pong", {}))
