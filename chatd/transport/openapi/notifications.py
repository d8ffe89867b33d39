"""/notifications: mentions and missed DMs (the notifications role), with read state."""

from __future__ import annotations

from typing import Any

from chatd.transport.http import MAX_DB_ID
from chatd.transport.openapi.common import (
    API,
    COUNT,
    ID,
    ID_IN,
    TIME,
    json_answer,
    obj,
    op,
    param,
    ref,
)
from chatd.transport.rest_notifications import DEFAULT_PAGE, MAX_IDS, MAX_PAGE

UNREAD = obj(["unread_count"], {"unread_count": COUNT})


def schemas() -> dict[str, Any]:
    return {
        "Notification": obj(
            [
                "id",
                "kind",
                "room_id",
                "message_id",
                "sender_id",
                "excerpt",
                "created_at",
                "read",
            ],
            {
                "id": ID,
                "kind": {
                    "enum": ["mention", "dm"],
                    "description": "mention: the message names you; dm: a DM sent while "
                    "you had no live socket (a DM that also mentions you is a mention)",
                },
                "room_id": ID,
                "message_id": ID,
                "sender_id": ID,
                "excerpt": {
                    "type": "string",
                    "maxLength": 200,
                    "description": "The message's text as sent, its first 200 characters",
                },
                "created_at": TIME,
                "read": {"type": "boolean"},
            },
        ),
        "NotificationPage": obj(
            ["items", "next", "unread_count"],
            {
                "items": {
                    "type": "array",
                    "items": ref("Notification"),
                    "description": "Newest first",
                },
                "next": {
                    "type": ["integer", "null"],
                    "description": "Pass as ?before= for older ones; null when none are left",
                },
                "unread_count": COUNT,
            },
        ),
        "UnreadCount": UNREAD,
        "NotificationsRead": {
            "type": "object",
            "description": "ids, up_to, or both: each marks your own notifications read "
            "(others' ids are ignored); marking one read twice changes nothing",
            "anyOf": [{"required": ["ids"]}, {"required": ["up_to"]}],
            "properties": {
                "ids": {"type": "array", "items": ID_IN, "maxItems": MAX_IDS},
                "up_to": ID_IN | {"description": "Every notification with this id or lower"},
            },
        },
    }


def paths() -> dict[str, Any]:
    unread = param(
        "unread",
        "query",
        "true: only those not read yet",
        schema={"type": "boolean"},
        empty_is_absent=False,
    )
    before = param("before", "query", "Older than this id (the page's next)", maximum=MAX_DB_ID)
    limit = param("limit", "query", f"Page size (default {DEFAULT_PAGE})", maximum=MAX_PAGE)
    return {
        f"{API}/notifications": {
            "get": op(
                "Your notifications, newest first, with how many are unread",
                {"200": json_answer(ref("NotificationPage"), "A page of notifications")},
                401,
                422,
                params=[unread, before, limit],
            ),
        },
        f"{API}/notifications/unread_count": {
            "get": op(
                "How many of your notifications are unread",
                {"200": json_answer(ref("UnreadCount"), "The count")},
                401,
            ),
        },
        f"{API}/notifications/read": {
            "post": op(
                "Mark notifications read (idempotent); the unread count after",
                {"200": json_answer(ref("UnreadCount"), "Marked")},
                400,
                401,
                422,
                body="NotificationsRead",
            ),
        },
    }
