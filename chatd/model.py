"""Frozen value types shared by every layer. No I/O here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NewType

UserId = NewType("UserId", int)
RoomId = NewType("RoomId", int)
MessageId = NewType("MessageId", int)  # the room's own contiguous sequence: 1, 2, 3, ...

Visibility = Literal["public", "private"]
VISIBILITIES: tuple[Visibility, ...] = ("public", "private")


def iso(ts: datetime) -> str:
    """RFC 3339 in UTC with a Z, the one timestamp format clients see."""
    return ts.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class User:
    id: UserId
    email: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email}


@dataclass(frozen=True, slots=True)
class Room:
    id: RoomId
    name: str
    visibility: Visibility
    owner_id: UserId
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "visibility": self.visibility,
            "owner_id": self.owner_id,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Message:
    id: MessageId
    room_id: RoomId
    user_id: UserId
    text: str
    created_at: datetime
    client_id: str | None = None
    # to_json() as compact JSON text, made on first use: the bus, the recent cache and
    # every socket's frame carry these same characters, so they are made once.
    _encoded: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def encoded(self) -> str:
        encoded = self._encoded
        if encoded is None:
            encoded = json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))
            object.__setattr__(self, "_encoded", encoded)  # a cache, not a change
        return encoded

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "room_id": self.room_id,
            "user_id": self.user_id,
            "text": self.text,
            "created_at": iso(self.created_at),
        }
        if self.client_id is not None:
            body["client_id"] = self.client_id
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Message:
        return cls(
            id=MessageId(int(body["id"])),
            room_id=RoomId(int(body["room_id"])),
            user_id=UserId(int(body["user_id"])),
            text=str(body["text"]),
            created_at=datetime.fromisoformat(body["created_at"]),
            client_id=body.get("client_id"),
        )


SignalKind = Literal["typing", "presence", "resync"]
SIGNALS: tuple[SignalKind, ...] = ("typing", "presence", "resync")


@dataclass(frozen=True, slots=True)
class Signal:
    """An ephemeral room event, never stored.

    typing: `user_id` is typing. presence: who is online in the room may have
    changed, look again. resync: messages may have been missed, refill from
    the store.
    """

    room_id: RoomId
    kind: SignalKind
    user_id: UserId | None = None


RoomChangeKind = Literal["deleted", "member_removed", "visibility_changed"]
ROOM_CHANGES: tuple[RoomChangeKind, ...] = ("deleted", "member_removed", "visibility_changed")


@dataclass(frozen=True, slots=True)
class RoomChange:
    """A committed change to a room that its open connections must act on.

    It says what changed, not who may stay: the room task reads the store
    (the truth) before closing anyone, so changes applied in any order, or
    twice, end the same way. deleted: every connection closes (4404).
    member_removed: `user_id` left; in a private room their sockets close
    (4403). visibility_changed: a room turned private closes the sockets of
    everyone who is not a member (4403).
    """

    room_id: RoomId
    kind: RoomChangeKind
    user_id: UserId | None = None


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """This instance's verdict that a user came online or went offline in a room."""

    room_id: RoomId
    user_id: UserId
    status: Literal["online", "offline"]


# Everything the bus carries to every instance's rooms.
BusEvent = Message | Signal | RoomChange


@dataclass(frozen=True, slots=True)
class Draft:
    """A message a client asked to send; it has no id until the store commits it."""

    room_id: RoomId
    user_id: UserId
    text: str
    client_id: str | None


@dataclass(frozen=True, slots=True)
class Appended:
    """What the store did with one draft of a batch.

    `fresh` is False when an earlier message with the same (room, user,
    client_id) already existed: `message` is then that original.
    """

    message: Message
    fresh: bool
