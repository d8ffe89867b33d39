"""Who hears of a message, and what: pure decisions, no I/O.

A message notifies everyone it mentions (the store resolved them to members of the
room when it committed the message; never its author). In a DM, group DMs included,
it also notifies every other member who is offline, with no live socket anywhere.
Someone who is both mentioned and a DM member gets one notification, of kind
"mention": it says more, and one message should ring one bell once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from chatd.events.event import Event
from chatd.model import Message, MessageId, Room, UserId
from chatd.store.notifications import NotificationDraft

EXCERPT_CHARS = 200
ELLIPSIS = "…"


def message_of(event: Event) -> Message:
    """The message a message.created event carries (its data is the message's JSON)."""
    return Message.from_json(json.loads(event.data))


def excerpt(text: str) -> str:
    """The start of the text, at most EXCERPT_CHARS characters, cut at a word if it can."""
    if len(text) <= EXCERPT_CHARS:
        return text
    cut = text[: EXCERPT_CHARS - 1]
    space = cut.rfind(" ")
    if space >= EXCERPT_CHARS // 2:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def dm_recipients(message: Message, room: Room | None) -> set[UserId]:
    """In a DM, the members to notify if they are offline: everyone but the author and
    those the message mentions (their mention says it already). Empty elsewhere."""
    if room is None or room.kind != "dm":
        return set()
    return set(room.member_ids) - {message.user_id} - set(message.mentions)


def drafts_for(
    event: Event, message: Message, room: Room | None, offline: Iterable[UserId]
) -> list[NotificationDraft]:
    """The notifications of one message.created event; `offline` are the DM recipients
    who have no live socket anywhere. The store keeps those whose user may still read
    the room."""
    text = excerpt(message.text)
    made = [
        NotificationDraft(
            user_id=user_id,
            kind="mention",
            room_id=message.room_id,
            message_id=MessageId(message.id),
            sender_id=message.user_id,
            event_id=event.id,
            excerpt=text,
        )
        for user_id in message.mentions
        if user_id != message.user_id
    ]
    made.extend(
        NotificationDraft(
            user_id=user_id,
            kind="dm",
            room_id=message.room_id,
            message_id=MessageId(message.id),
            sender_id=message.user_id,
            event_id=event.id,
            excerpt=text,
        )
        for user_id in sorted(set(offline) & dm_recipients(message, room))
    )
    return made
