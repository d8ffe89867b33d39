"""Mentions: `@handle` and `@user_id` in a text, resolved to members of its room.

Resolved once, when the message (or its edit) is committed: the message
carries who it mentions, and a row per mentioned user makes their mention
count a range scan past their watermark.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from chatd.model import RoomId, UserId
from chatd.store.sqlbase import SqlCursor

# "@" not inside a word or an address (ann@example.com mentions nobody), then a handle
# as an email's local part spells it; trailing dots and dashes end the sentence.
MENTION = re.compile(r"(?<![\w@.+-])@([\w][\w.+-]{0,63})")
MAX_MENTIONS = 20  # a message naming more is not looked up past these


def mention_tokens(text: str) -> list[str]:
    tokens: list[str] = []
    for match in MENTION.finditer(text):
        token = match.group(1).rstrip(".-").casefold()
        if token and token not in tokens:
            tokens.append(token)
            if len(tokens) == MAX_MENTIONS:
                break
    return tokens


def resolve_mentions(
    cur: SqlCursor, room_id: RoomId, author: UserId, text: str
) -> tuple[UserId, ...]:
    """The room's members the text mentions, the author aside, in id order."""
    tokens = mention_tokens(text)
    found: set[UserId] = set()
    ids = [int(token) for token in tokens if token.isascii() and token.isdigit()]
    if ids := [i for i in ids if i < 2**63]:
        marks = ", ".join("?" * len(ids))
        rows = cur.all(
            f"SELECT user_id FROM room_members WHERE room_id = ? AND user_id IN ({marks})",
            (room_id, *ids),
        )
        found.update(UserId(row[0]) for row in rows)
    for handle in (token for token in tokens if not token.isdigit()):
        rows = cur.all(
            "SELECT u.id FROM users u JOIN room_members rm ON rm.user_id = u.id"
            " AND rm.room_id = ? WHERE u.email_key LIKE ? ESCAPE '!'",
            (room_id, like_prefix(handle + "@")),
        )
        found.update(UserId(row[0]) for row in rows)
    found.discard(author)
    return tuple(sorted(found))


def like_prefix(prefix: str) -> str:
    """A LIKE pattern (ESCAPE '!') matching what starts with prefix, taken literally."""
    return re.sub(r"([!%_])", r"!\1", prefix) + "%"


def add_mentions(cur: SqlCursor, rows: Sequence[tuple[UserId, RoomId, int]]) -> None:
    cur.executemany(
        "INSERT INTO mentions (user_id, room_id, message_id) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        rows,
    )
