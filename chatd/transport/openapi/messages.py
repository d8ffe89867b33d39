"""Messages and what happens to them: history, edits, deletions, reactions, read
state and search."""

from __future__ import annotations

import functools
from typing import Any

from chatd.errors import ValidationFailed
from chatd.search.query import MAX_QUERY_CHARS, MAX_TERMS
from chatd.transport.http import MAX_DB_ID
from chatd.transport.openapi.common import (
    API,
    COUNT,
    ID,
    MESSAGE_ID,
    NO_CONTENT,
    ROOM_ID,
    STRING,
    TIME,
    json_answer,
    obj,
    op,
    param,
    ref,
    required_query,
    without,
)
from chatd.transport.rest_messages import MAX_EMOJI_CHARS, emoji_param
from chatd.transport.rest_search import DEFAULT_PAGE as SEARCH_DEFAULT
from chatd.transport.rest_search import MAX_CURSOR_CHARS
from chatd.transport.rest_search import MAX_PAGE as SEARCH_MAX

MAX_TEXT = 4000


def _emoji_refuses(ch: str) -> bool:
    if ch.isprintable() and ch != " ":
        return False  # letters, marks, numbers, punctuation, symbols: all taken
    try:
        emoji_param(ch)
    except ValidationFailed:
        return True
    return False


@functools.cache
def emoji() -> dict[str, Any]:
    """What rest_messages.emoji_param() takes: 1 to 16 characters, no spaces and no
    control or format characters but the joiner and variation selectors of emoji."""
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_EMOJI_CHARS,
        "description": "1 to 16 characters; no spaces, no control or format characters "
        "other than the zero-width joiner and variation selectors",
        **without(_emoji_refuses),
    }


_TEXT = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TEXT,
    "pattern": r"\S",
    "not": {"pattern": "\\u0000"},
    "description": f"1 to {MAX_TEXT} characters, not all of them whitespace, no NUL",
}


def schemas() -> dict[str, Any]:
    return {
        "Message": obj(
            ["id", "room_id", "user_id", "text", "created_at"],
            {
                "id": {**ID, "description": "The room's event sequence: 1, 2, 3, ..."},
                "room_id": ID,
                "user_id": ID,
                "text": {
                    "type": "string",
                    "maxLength": MAX_TEXT,
                    "description": "The current text; empty once deleted",
                },
                "created_at": TIME,
                "client_id": {"type": "string", "maxLength": 64},
                "edited_at": {**TIME, "description": "When last edited; absent if never"},
                "deleted": {"const": True, "description": "A tombstone; absent if not deleted"},
                "mentions": {
                    "type": "array",
                    "items": ID,
                    "description": "Who it mentions; absent if nobody",
                },
                "reactions": {
                    "type": "array",
                    "items": ref("ReactionCount"),
                    "description": "History only; absent if none",
                },
            },
        ),
        "ReactionCount": obj(
            ["emoji", "count", "me"],
            {
                "emoji": emoji(),
                "count": ID,
                "me": {"type": "boolean", "description": "Whether the caller reacted so"},
            },
        ),
        "MessagePage": obj(
            ["items", "next"],
            {
                "items": {"type": "array", "items": ref("Message"), "description": "Oldest first"},
                "next": {
                    "type": ["integer", "null"],
                    "description": "Pass as ?before= for older messages; null when none are left",
                },
            },
        ),
        "MessageEdit": {"type": "object", "required": ["text"], "properties": {"text": _TEXT}},
        "Reaction": obj(
            ["message_id", "emoji", "count", "me"],
            {"message_id": ID, "emoji": emoji(), "count": COUNT, "me": {"type": "boolean"}},
        ),
        "ReadRequest": {
            "type": "object",
            "required": ["message_id"],
            "properties": {
                "message_id": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": MAX_DB_ID,
                    "description": "The newest id read; a lower one than before changes nothing",
                }
            },
        },
        "ReadState": obj(
            ["last_read_id", "unread", "mentions"],
            {"last_read_id": COUNT, "unread": COUNT, "mentions": COUNT},
        ),
        "Reads": obj(
            ["items", "seen_by"],
            {
                "items": {
                    "type": "array",
                    "items": obj(
                        ["user_id", "last_read_id"], {"user_id": ID, "last_read_id": COUNT}
                    ),
                },
                "seen_by": {
                    "type": "boolean",
                    "description": "false in rooms over CHATD_SEEN_BY_MAX_MEMBERS: items is empty",
                },
            },
        ),
        "SearchHit": obj(
            ["message", "highlight"],
            {
                "message": ref("Message"),
                "highlight": {
                    "type": "array",
                    "description": "The text, or a window of it around the first match, in pieces",
                    "items": obj(
                        ["text", "match"],
                        {"text": STRING, "match": {"type": "boolean"}},
                    ),
                },
            },
        ),
        "SearchPage": obj(
            ["items", "next"],
            {
                "items": {
                    "type": "array",
                    "items": ref("SearchHit"),
                    "description": "Newest first",
                },
                "next": {
                    "type": ["string", "null"],
                    "description": "Pass as ?cursor= for the next page; null on the last page",
                },
            },
        ),
    }


def paths() -> dict[str, Any]:
    room = f"{API}/rooms/{{room_id}}"
    message = f"{room}/messages/{{message_id}}"
    emoji_in_path = param("emoji", "path", "The emoji, URL-encoded", schema=emoji())
    reaction = {"200": json_answer(ref("Reaction"), "The message's count for this emoji")}
    reaction_codes = {409: "message_deleted; too_many_reactions: 20 different ones already"}
    return {
        f"{room}/messages": {
            "get": op(
                "History (messages, not the other events), newest page first; "
                "each page oldest first",
                {"200": json_answer(ref("MessagePage"), "A page of messages")},
                401,
                403,
                404,
                422,
                params=[
                    ROOM_ID,
                    param("limit", "query", "Page size (default 50)", maximum=200),
                    param("before", "query", "Only messages with a smaller id", maximum=MAX_DB_ID),
                ],
            )
        },
        message: {
            "patch": op(
                "Edit your message",
                {"200": json_answer(ref("Message"), "The message as it is now")},
                400,
                401,
                403,
                404,
                409,
                422,
                423,
                body="MessageEdit",
                params=[ROOM_ID, MESSAGE_ID],
                codes={403: "Not the author", 409: "message_deleted"},
            ),
            "delete": op(
                "Delete a message (its author, an admin or the owner): it stays as a "
                "tombstone. Deleting it again changes nothing",
                NO_CONTENT,
                401,
                403,
                404,
                422,
                423,
                params=[ROOM_ID, MESSAGE_ID],
            ),
        },
        f"{message}/reactions/{{emoji}}": {
            "put": op(
                "React (again: no change)",
                reaction,
                401,
                403,
                404,
                409,
                422,
                423,
                params=[ROOM_ID, MESSAGE_ID, emoji_in_path],
                codes=reaction_codes,
            ),
            "delete": op(
                "Take your reaction back (none: no change)",
                reaction,
                401,
                403,
                404,
                409,
                422,
                423,
                params=[ROOM_ID, MESSAGE_ID, emoji_in_path],
                codes={409: "message_deleted"},
            ),
        },
        f"{room}/read": {
            "post": op(
                "Move your read watermark forward (never back)",
                {"200": json_answer(ref("ReadState"), "Your read state in the room")},
                400,
                401,
                403,
                404,
                422,
                body="ReadRequest",
                params=[ROOM_ID],
            )
        },
        f"{room}/reads": {
            "get": op(
                "Each member's read watermark (DMs and small rooms)",
                {"200": json_answer(ref("Reads"), "Watermarks")},
                401,
                403,
                404,
                params=[ROOM_ID],
            )
        },
        f"{API}/search": {
            "get": op(
                "Messages holding every word of q (as a word or its start, any case), "
                "in one room or every room you may read; newest first",
                {"200": json_answer(ref("SearchPage"), "A page of matches")},
                401,
                403,
                404,
                422,
                params=[
                    required_query(
                        "q",
                        f"Up to {MAX_TERMS} different words (runs of letters and digits); "
                        "the rest separates them",
                        {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_QUERY_CHARS,
                            "pattern": r"[^\W_]",
                        },
                    ),
                    param("room_id", "query", "Only this room", maximum=MAX_DB_ID),
                    param(
                        "limit",
                        "query",
                        f"Page size (default {SEARCH_DEFAULT})",
                        maximum=SEARCH_MAX,
                    ),
                    param(
                        "cursor",
                        "query",
                        "SearchPage.next of the page before (opaque)",
                        schema={"type": "string", "maxLength": MAX_CURSOR_CHARS},
                    ),
                ],
            )
        },
    }
