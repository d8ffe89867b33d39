"""/admin: the admin API (docs/admin.md), for users with the administrator flag."""

from __future__ import annotations

from typing import Any

from chatd.admin.routes import DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE
from chatd.transport.http import MAX_DB_ID
from chatd.transport.openapi.common import (
    API,
    COUNT,
    ID,
    ROOM_ID,
    STRING,
    TIME,
    USER_ID,
    json_answer,
    obj,
    op,
    param,
    ref,
)

ADMIN = f"{API}/admin"
_INSTANCE = {"type": "string", "description": "The instance's id (CHATD_INSTANCE_ID or random)"}
_AGE = {"type": "number", "minimum": 0, "description": "Seconds since as_of, when read"}
_FORBIDDEN = {403: "The caller is not an administrator (code forbidden)"}


def schemas() -> dict[str, Any]:
    return {
        "InstanceReport": obj(
            [
                "instance_id",
                "roles",
                "version",
                "pid",
                "started_at",
                "as_of",
                "age_s",
                "connections",
                "rooms_active",
                "messages",
                "event_loop_lag_s",
                "rss_bytes",
                "truncated",
            ],
            {
                "instance_id": _INSTANCE,
                "roles": {"type": "array", "items": {"enum": ["api", "ws", "notifications"]}},
                "version": STRING,
                "pid": ID,
                "started_at": TIME,
                "as_of": {**TIME, "description": "When the instance made this report"},
                "age_s": _AGE,
                "connections": {**COUNT, "description": "Live WebSocket connections"},
                "rooms_active": {**COUNT, "description": "Rooms with a live connection here"},
                "messages": obj(
                    ["received", "persisted", "delivered"],
                    {"received": COUNT, "persisted": COUNT, "delivered": COUNT},
                    description="Since the instance started",
                ),
                "event_loop_lag_s": {
                    "type": ["number", "null"],
                    "minimum": 0,
                    "description": "Mean lateness of the event loop's ticks since the "
                    "previous report; null before the first tick",
                },
                "rss_bytes": COUNT,
                "truncated": {
                    "type": "boolean",
                    "description": "More connections than a report lists (10,000)",
                },
            },
        ),
        "Connection": obj(
            ["user_id", "room_id", "connected_at", "address", "instance_id"],
            {
                "user_id": ID,
                "room_id": ID,
                "connected_at": TIME,
                "address": {
                    "type": ["string", "null"],
                    "description": "The socket's peer, host:port (behind a proxy: the proxy)",
                },
                "instance_id": _INSTANCE,
            },
        ),
        "Connections": obj(
            ["instances", "rooms"],
            {
                "instances": {
                    "type": "array",
                    "description": "Per instance: its count, and its connections that match",
                    "items": obj(
                        ["instance_id", "as_of", "age_s", "connections", "truncated", "items"],
                        {
                            "instance_id": _INSTANCE,
                            "as_of": TIME,
                            "age_s": _AGE,
                            "connections": {**COUNT, "description": "All of them, unfiltered"},
                            "truncated": {"type": "boolean"},
                            "items": {"type": "array", "items": ref("Connection")},
                        },
                    ),
                },
                "rooms": {
                    "type": "array",
                    "description": "Per room, of the connections that match",
                    "items": obj(
                        ["room_id", "connections", "users", "instances"],
                        {
                            "room_id": ID,
                            "connections": COUNT,
                            "users": {"type": "array", "items": ID},
                            "instances": {"type": "array", "items": _INSTANCE},
                        },
                    ),
                },
            },
        ),
        "AdminRoom": obj(
            ["id", "name", "kind", "visibility", "owner_id", "created_at", "last_message_id"],
            {
                "id": ID,
                "name": STRING,
                "kind": {"enum": ["room", "dm"]},
                "visibility": {"enum": ["public", "private", "invite"]},
                "owner_id": {**ID, "type": ["integer", "null"]},
                "created_at": TIME,
                "last_message_id": COUNT,
                "member_ids": {"type": "array", "items": ID},
                "closed_at": {**TIME, "description": "Absent while open"},
            },
        ),
        "Disconnect": {
            "type": "object",
            "properties": {
                "revoke_sessions": {
                    "type": "boolean",
                    "default": False,
                    "description": "Also revoke every refresh token and refuse every access "
                    "token issued until now: the user must log in again",
                }
            },
        },
        "Disconnected": obj(
            ["user_id", "revoke_sessions"], {"user_id": ID, "revoke_sessions": {"type": "boolean"}}
        ),
        "SetAdmin": {
            "type": "object",
            "required": ["admin"],
            "properties": {"admin": {"type": "boolean"}},
        },
        "AdminFlag": obj(
            ["user_id", "admin", "changed"],
            {
                "user_id": ID,
                "admin": {"type": "boolean"},
                "changed": {"type": "boolean", "description": "false: it was so already"},
            },
        ),
        "Purged": obj(
            ["room_id", "deleted_messages", "up_to"],
            {
                "room_id": ID,
                "deleted_messages": COUNT,
                "up_to": {**COUNT, "description": "Every id up to this one is gone"},
            },
        ),
        "AuditEntry": obj(
            [
                "id",
                "at",
                "actor_id",
                "action",
                "target_type",
                "target_id",
                "detail",
                "instance",
            ],
            {
                "id": ID,
                "at": TIME,
                "actor_id": {**ID, "type": ["integer", "null"], "description": "null: the CLI"},
                "action": {
                    "type": "string",
                    "description": "user.create_admin, user.grant_admin, user.revoke_admin, "
                    "user.disconnect, room.close, room.reopen, room.purge",
                },
                "target_type": {"enum": ["user", "room"]},
                "target_id": {**ID, "type": ["integer", "null"]},
                "detail": {"type": "object"},
                "instance": STRING,
            },
        ),
        "AuditPage": obj(
            ["items", "next"],
            {
                "items": {
                    "type": "array",
                    "items": ref("AuditEntry"),
                    "description": "Newest first",
                },
                "next": {
                    "type": ["integer", "null"],
                    "description": "Pass as ?before= for older entries; null when none are left",
                },
            },
        ),
    }


def paths() -> dict[str, Any]:
    id_query = {"type": "integer", "minimum": 1, "maximum": MAX_DB_ID}
    room = {"200": json_answer(ref("AdminRoom"), "The room as it now is")}
    return {
        f"{ADMIN}/instances": {
            "get": op(
                "Every live instance's statistics (reports at most 3 intervals old)",
                {
                    "200": json_answer(
                        obj(
                            ["items"], {"items": {"type": "array", "items": ref("InstanceReport")}}
                        ),
                        "One report per instance, by id",
                    )
                },
                401,
                403,
                codes=_FORBIDDEN,
            )
        },
        f"{ADMIN}/connections": {
            "get": op(
                "Live connections on every instance, per instance and per room",
                {"200": json_answer(ref("Connections"), "The connections that match")},
                401,
                403,
                422,
                params=[
                    param("room_id", "query", "Only in this room", schema=id_query),
                    param("user_id", "query", "Only this user's", schema=id_query),
                ],
                codes=_FORBIDDEN,
            )
        },
        f"{ADMIN}/users/{{user_id}}/disconnect": {
            "post": op(
                "Close every socket of the user, on every instance (close code 4408)",
                {"200": json_answer(ref("Disconnected"), "Done")},
                400,
                401,
                403,
                404,
                422,
                body="Disconnect",
                params=[USER_ID],
                codes=_FORBIDDEN,
            )
        },
        f"{ADMIN}/users/{{user_id}}/admin": {
            "post": op(
                "Grant or revoke the administrator flag (not your own revoke: 409)",
                {"200": json_answer(ref("AdminFlag"), "The flag as it now is")},
                400,
                401,
                403,
                404,
                409,
                422,
                body="SetAdmin",
                params=[USER_ID],
                codes={**_FORBIDDEN, 409: "Your own rights (code cannot_revoke_self)"},
            )
        },
        f"{ADMIN}/rooms/{{room_id}}/close": {
            "post": op(
                "Close a room: its sockets close (4423); joins, sends, edits and reactions "
                "are refused (423 room_closed) until it is reopened; history stays readable",
                room,
                401,
                403,
                404,
                params=[ROOM_ID],
                codes=_FORBIDDEN,
            )
        },
        f"{ADMIN}/rooms/{{room_id}}/reopen": {
            "post": op(
                "Reopen a closed room",
                room,
                401,
                403,
                404,
                params=[ROOM_ID],
                codes=_FORBIDDEN,
            )
        },
        f"{ADMIN}/rooms/{{room_id}}/purge": {
            "post": op(
                "Delete every message and event of a room (sockets get a room_purged frame); "
                "the room, its members and its numbering stay",
                {"200": json_answer(ref("Purged"), "Purged")},
                401,
                403,
                404,
                params=[ROOM_ID],
                codes=_FORBIDDEN,
            )
        },
        f"{ADMIN}/audit": {
            "get": op(
                "The audit log, newest first",
                {"200": json_answer(ref("AuditPage"), "A page of entries")},
                401,
                403,
                422,
                params=[
                    param(
                        "before", "query", "AuditPage.next of the page before", maximum=MAX_DB_ID
                    ),
                    param(
                        "limit",
                        "query",
                        f"Page size (default {DEFAULT_AUDIT_PAGE})",
                        maximum=MAX_AUDIT_PAGE,
                    ),
                ],
                codes=_FORBIDDEN,
            )
        },
    }
