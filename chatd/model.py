"""Frozen value types shared by every layer. No I/O here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, NewType

UserId = NewType("UserId", int)
RoomId = NewType("RoomId", int)
MessageId = NewType("MessageId", int)  # the room's own contiguous sequence: 1, 2, 3, ...

Visibility = Literal["public", "private", "invite"]
VISIBILITIES: tuple[Visibility, ...] = ("public", "private", "invite")
RoomKind = Literal["room", "dm"]  # a DM has no owner, no name, and fixed members
Role = Literal["owner", "admin", "member"]
ROLES: tuple[Role, ...] = ("owner", "admin", "member")


def iso(ts: datetime) -> str:
    """RFC 3339 in UTC with a Z, the one timestamp format clients see."""
    return ts.isoformat(timespec="microseconds").replace("+00:00", "Z")


def handle_of(email: str) -> str:
    """What others call a user, and mention them by: their email's local part, lower case."""
    return email.rpartition("@")[0].casefold() or email.casefold()


@dataclass(frozen=True, slots=True)
class User:
    id: UserId
    email: str

    @property
    def handle(self) -> str:
        return handle_of(self.email)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "email": self.email, "handle": self.handle}


@dataclass(frozen=True, slots=True)
class Room:
    id: RoomId
    name: str
    visibility: Visibility
    owner_id: UserId | None  # None for a DM
    created_at: datetime
    kind: RoomKind = "room"
    last_message_id: int = 0
    member_ids: tuple[UserId, ...] = ()  # a DM's members (other rooms: not carried)
    closed_at: datetime | None = None  # closed by an administrator (chatd/admin/)

    @property
    def members_only(self) -> bool:
        """Only members may read it: private and invite rooms, and DMs."""
        return self.visibility != "public" or self.kind == "dm"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "visibility": self.visibility,
            "owner_id": self.owner_id,
            "created_at": iso(self.created_at),
            "last_message_id": self.last_message_id,
        }
        if self.kind == "dm":
            body["member_ids"] = list(self.member_ids)
        if self.closed_at is not None:
            body["closed_at"] = iso(self.closed_at)
        return body


@dataclass(frozen=True, slots=True)
class Membership:
    """A member's place in a room: their role and what they have not read yet."""

    role: Role
    last_read_id: int
    unread: int
    mentions: int

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in MEMBERSHIP_FIELDS}


MEMBERSHIP_FIELDS = ("role", "last_read_id", "unread", "mentions")
# What a room says of its caller's membership when they are not a member.
NOT_A_MEMBER: dict[str, Any] = dict.fromkeys(MEMBERSHIP_FIELDS)


@dataclass(frozen=True, slots=True)
class RoomMember:
    user_id: UserId
    handle: str
    role: Role
    joined_at: datetime
    last_read_id: int

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "handle": self.handle,
            "role": self.role,
            "joined_at": iso(self.joined_at),
        }


@dataclass(frozen=True, slots=True)
class Invite:
    room_id: RoomId
    room_name: str
    user_id: UserId
    invited_by: UserId
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "room_name": self.room_name,
            "user_id": self.user_id,
            "invited_by": self.invited_by,
            "created_at": iso(self.created_at),
        }


# A room's sequence holds its messages and the events about them; each takes the next id.
MessageKind = Literal["message", "edited", "deleted", "reaction_added", "reaction_removed"]
MESSAGE_KINDS: tuple[MessageKind, ...] = (
    "message",
    "edited",
    "deleted",
    "reaction_added",
    "reaction_removed",
)
# The WebSocket frame type of each kind.
FRAME_TYPES: dict[str, str] = {
    "message": "message",
    "edited": "message_edited",
    "deleted": "message_deleted",
    "reaction_added": "reaction",
    "reaction_removed": "reaction",
}


@dataclass(frozen=True, slots=True)
class Message:
    """One entry of a room's sequence: a message, or an event about the message target_id.

    An edit carries the new text; a reaction event its emoji as text and the message's
    new count of it; `user_id` is always who did it. `created_at` is when.
    """

    id: MessageId
    room_id: RoomId
    user_id: UserId
    text: str
    created_at: datetime
    client_id: str | None = None
    kind: MessageKind = "message"
    target_id: MessageId | None = None
    edited_at: datetime | None = None  # a message edited since (history's current state)
    deleted: bool = False  # a tombstone: the text is gone
    mentions: tuple[UserId, ...] = ()
    count: int | None = None  # reaction events: how many now have that emoji on the target
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

    @property
    def frame_type(self) -> str:
        return FRAME_TYPES[self.kind]

    def to_json(self) -> dict[str, Any]:
        kind = self.kind
        body: dict[str, Any] = {"id": self.id, "room_id": self.room_id, "user_id": self.user_id}
        if kind == "message":
            body["text"] = self.text
            body["created_at"] = iso(self.created_at)
            if self.client_id is not None:
                body["client_id"] = self.client_id
            if self.edited_at is not None:
                body["edited_at"] = iso(self.edited_at)
            if self.deleted:
                body["deleted"] = True
        elif kind == "edited":
            body["message_id"] = self.target_id
            body["text"] = self.text
            body["edited_at"] = iso(self.created_at)
        elif kind == "deleted":
            body["message_id"] = self.target_id
            body["deleted_at"] = iso(self.created_at)
        else:
            body["message_id"] = self.target_id
            body["emoji"] = self.text
            body["action"] = "added" if kind == "reaction_added" else "removed"
            body["count"] = self.count
            body["created_at"] = iso(self.created_at)
        if self.mentions:
            body["mentions"] = list(self.mentions)
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Message:
        """What to_json made (the bus and the cache carry it); its keys tell the kind."""
        kind: MessageKind = "message"
        target = body.get("message_id")
        when, text, edited_at = body.get("created_at"), body.get("text", ""), None
        if target is None:
            edited_at = body.get("edited_at")
        elif "action" in body:
            kind = "reaction_added" if body["action"] == "added" else "reaction_removed"
            text = body["emoji"]
        elif "deleted_at" in body:
            kind, when = "deleted", body["deleted_at"]
        else:
            kind, when = "edited", body["edited_at"]
        return cls(
            id=MessageId(int(body["id"])),
            room_id=RoomId(int(body["room_id"])),
            user_id=UserId(int(body["user_id"])),
            text=str(text),
            created_at=datetime.fromisoformat(str(when)),
            client_id=body.get("client_id"),
            kind=kind,
            target_id=None if target is None else MessageId(int(target)),
            edited_at=None if edited_at is None else datetime.fromisoformat(edited_at),
            deleted=bool(body.get("deleted", False)),
            mentions=tuple(UserId(int(u)) for u in body.get("mentions", ())),
            count=None if "count" not in body else int(body["count"]),
        )


@dataclass(frozen=True, slots=True)
class TracedMessage(Message):
    """A Message that carries the W3C traceparent of the span that committed or published
    it (chatd/tracing/): the bus carries that beside the message, never in to_json(). Made
    only while tracing is on, so that a message costs nothing more while it is off."""

    traceparent: str | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, message: Message, traceparent: str | None) -> TracedMessage:
        """The same message, with this traceparent (its JSON, if made, is kept)."""
        traced = cls(
            **{name: getattr(message, name) for name in _MESSAGE_INIT_FIELDS},
            traceparent=traceparent,
        )
        object.__setattr__(traced, "_encoded", message._encoded)  # a cache, not a change
        return traced


_MESSAGE_INIT_FIELDS = tuple(f.name for f in fields(Message) if f.init)


@dataclass(frozen=True, slots=True)
class Reaction:
    """One emoji on a message, as the caller sees it: how many, and whether they are one."""

    emoji: str
    count: int
    me: bool

    def to_json(self) -> dict[str, Any]:
        return {"emoji": self.emoji, "count": self.count, "me": self.me}


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


RoomChangeKind = Literal[
    "deleted",
    "member_removed",
    "visibility_changed",
    "member_added",
    "role_changed",
    "room_updated",
    "read",
    "closed",
    "reopened",
    "purged",
]
ROOM_CHANGES: tuple[RoomChangeKind, ...] = (
    "deleted",
    "member_removed",
    "visibility_changed",
    "member_added",
    "role_changed",
    "room_updated",
    "read",
    "closed",
    "reopened",
    "purged",
)


@dataclass(frozen=True, slots=True)
class RoomChange:
    """A committed change to a room that its open connections must act on.

    It says what changed, not who may stay: the room task reads the store
    (the truth) before closing anyone, so changes applied in any order, or
    twice, end the same way. deleted: every connection closes (4404).
    member_removed: `user_id` left or was removed (`detail`: "left" or
    "removed"); in a members-only room their sockets close (4403).
    visibility_changed: a room turned members-only closes the sockets of
    everyone who is not a member (4403). member_added and role_changed:
    `user_id` has the role `detail`. room_updated: its name or owner changed.
    read: `user_id`'s watermark is now at message `detail`. closed: an
    administrator closed the room: every connection closes (4423) and new
    ones are refused until reopened. purged: an administrator deleted every
    message up to `detail`; members are told (a room_purged frame).
    """

    room_id: RoomId
    kind: RoomChangeKind
    user_id: UserId | None = None
    detail: str | int | None = None


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """This instance's verdict that a user came online or went offline in a room."""

    room_id: RoomId
    user_id: UserId
    status: Literal["online", "offline"]


# Everything the bus carries to every instance's rooms.
BusEvent = Message | Signal | RoomChange

UserEventKind = Literal["notification", "disconnect"]


@dataclass(frozen=True, slots=True)
class UserEvent:
    """Something for every live socket of one user, on whichever instance it is.

    notification: `detail` is the frame's JSON text, sent as it is (chatd/notifications/).
    disconnect: an admin ended the user's sessions (chatd/admin/); `detail` is the reason.
    It is not a room event: the bus carries it on one channel every instance listens to.
    """

    user_id: UserId
    kind: UserEventKind
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One administrative action, as the audit log keeps it (chatd/admin/).

    `actor_id` is None for the command line (`chatd admin create-user`); `detail` is
    what else the action was given or found; `instance` names the instance that did it.
    `id` and `at` are the store's, once written.
    """

    actor_id: UserId | None
    action: str
    target_type: str
    target_id: int | None
    detail: dict[str, Any] = field(default_factory=dict)
    instance: str = ""
    id: int = 0
    at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": None if self.at is None else iso(self.at),
            "actor_id": self.actor_id,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "detail": self.detail,
            "instance": self.instance,
        }


@dataclass(frozen=True, slots=True)
class Draft:
    """A message a client asked to send; it has no id until the store commits it."""

    room_id: RoomId
    user_id: UserId
    text: str
    client_id: str | None
    # W3C traceparent of the span that received it, when tracing is on (chatd/tracing/):
    # the store writes it with the message's event, so the trace continues past the outbox.
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Appended:
    """What the store did with one draft of a batch.

    `fresh` is False when an earlier message with the same (room, user,
    client_id) already existed: `message` is then that original.
    """

    message: Message
    fresh: bool


NotificationKind = Literal["mention", "dm"]


@dataclass(frozen=True, slots=True)
class Notification:
    """Something a user should hear of: a message that mentions them, or a DM sent while
    they were offline (chatd/notifications/). `event_id` is the stream event behind it."""

    id: int
    user_id: UserId
    kind: NotificationKind
    room_id: RoomId
    message_id: MessageId
    sender_id: UserId
    event_id: int
    excerpt: str
    created_at: datetime
    read_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "room_id": self.room_id,
            "message_id": self.message_id,
            "sender_id": self.sender_id,
            "excerpt": self.excerpt,
            "created_at": iso(self.created_at),
            "read": self.read_at is not None,
        }
