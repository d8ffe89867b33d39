"""An event of the stream: a committed change, numbered, with its routing key.

Events are versioned: `version` is the version of `data`'s shape for that `type`. A
consumer reads the types and versions it knows and skips the rest; a change to a shape
that is not an addition is a new version, and the old one is still published beside it
until its consumers have moved (docs/events.md lists every type).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from chatd.model import MessageKind, RoomChangeKind, RoomId, UserId, iso

EventType = Literal[
    "message.created",
    "message.edited",
    "message.deleted",
    "reaction.added",
    "reaction.removed",
    "room.created",
    "room.updated",
    "room.deleted",
    "room.closed",
    "room.reopened",
    "room.purged",
    "member.joined",
    "member.added",
    "member.left",
    "member.removed",
    "member.role_changed",
]
EVENT_TYPES: tuple[EventType, ...] = EventType.__args__  # type: ignore[attr-defined]

# The shape of `data` of each type, for consumers (docs/events.md); one for now.
VERSION = 1

# A message-sequence entry's kind, as an event type: `data` is the entry's JSON, as
# clients and the bus see it (Message.to_json()).
MESSAGE_EVENTS: dict[MessageKind, EventType] = {
    "message": "message.created",
    "edited": "message.edited",
    "deleted": "message.deleted",
    "reaction_added": "reaction.added",
    "reaction_removed": "reaction.removed",
}


@dataclass(frozen=True, slots=True)
class Event:
    """One published change. `id` is its position in the stream: 1, 2, 3, ... with no
    hole, in the order the relay published them; `data` is JSON text, kept as stored."""

    id: int
    type: EventType
    version: int
    room_id: RoomId | None
    actor_id: UserId | None
    occurred_at: datetime
    data: str
    traceparent: str | None = None

    @property
    def routing_key(self) -> str:
        """room.<id>.<type>, e.g. room.7.message.created; events of no room: global.<type>."""
        scope = "global" if self.room_id is None else f"room.{self.room_id}"
        return f"{scope}.{self.type}"

    def body(self) -> dict[str, Any]:
        return json.loads(self.encode())  # type: ignore[no-any-return]

    def encode(self) -> str:
        """The JSON text consumers receive (data spliced in as stored, not re-encoded)."""
        head = json.dumps(
            {
                "id": self.id,
                "type": self.type,
                "version": self.version,
                "room_id": self.room_id,
                "actor_id": self.actor_id,
                "occurred_at": iso(self.occurred_at),
            },
            separators=(",", ":"),
        )
        return f'{head[:-1]},"data":{self.data}}}'

    @classmethod
    def decode(cls, text: str | bytes, traceparent: str | None = None) -> Event:
        """What encode() made; ValueError if it is not an event."""
        try:
            body = json.loads(text)
            kind = body["type"]
            if kind not in EVENT_TYPES:
                raise ValueError(f"unknown event type {kind!r}")
            room, actor = body.get("room_id"), body.get("actor_id")
            return cls(
                id=int(body["id"]),
                type=kind,
                version=int(body["version"]),
                room_id=None if room is None else RoomId(int(room)),
                actor_id=None if actor is None else UserId(int(actor)),
                occurred_at=datetime.fromisoformat(body["occurred_at"]),
                data=json.dumps(body["data"], ensure_ascii=False, separators=(",", ":")),
                traceparent=traceparent,
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not an event: {exc}") from exc


# Room changes the room routes publish on the bus, as the events they record.
ROOM_CHANGE_EVENTS: dict[RoomChangeKind, EventType] = {
    "deleted": "room.deleted",
    "visibility_changed": "room.updated",
    "room_updated": "room.updated",
    "role_changed": "member.role_changed",
}
