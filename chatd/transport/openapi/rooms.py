"""/rooms, /dms and invitations: conversations, their members and roles."""

from __future__ import annotations

from typing import Any

from chatd.transport.http import MAX_DB_ID
from chatd.transport.openapi.common import (
    API,
    COUNT,
    HANDLE,
    ID,
    ID_IN,
    NO_CONTENT,
    ROLE,
    ROOM_ID,
    TIME,
    USER_ID,
    json_answer,
    obj,
    op,
    param,
    ref,
)
from chatd.transport.rest_rooms import MAX_ROOM_NAME

DEFAULT_GROUP_DM_MAX = 8  # CHATD_GROUP_DM_MAX
VISIBILITY = {"enum": ["public", "private", "invite"]}
# What rest_rooms.room_name() accepts: 1 to 100 characters once the whitespace around
# them is trimmed (a pattern can say that, maxLength cannot), none of them control,
# line-separator, bidi-override or invisible.
_UNSHOWN = r"\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200b\u2060\ufeff"
_INNER = f"{{0,{MAX_ROOM_NAME - 2}}}"
ROOM_NAME_PATTERN = rf"^\s*[^\s{_UNSHOWN}](?:[^{_UNSHOWN}]{_INNER}[^\s{_UNSHOWN}])?\s*$"
_ROOM_NAME = {
    "type": "string",
    "pattern": ROOM_NAME_PATTERN,
    "description": f"Trimmed, then 1 to {MAX_ROOM_NAME} characters, none of them control, "
    "bidi override or invisible ones",
}
_CALLERS = "For the caller; null when the caller is not a member"


def _user_id_body(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["user_id"],
        "properties": {"user_id": ID_IN},
        "description": description,
    }


def schemas(group_dm_max: int) -> dict[str, Any]:
    return {
        "Room": obj(
            [
                "id",
                "name",
                "kind",
                "visibility",
                "owner_id",
                "created_at",
                "last_message_id",
                "role",
                "last_read_id",
                "unread",
                "mentions",
            ],
            {
                "id": ID,
                "name": {
                    "type": "string",
                    "maxLength": MAX_ROOM_NAME,
                    "description": "Empty for a DM",
                },
                "kind": {"enum": ["room", "dm"]},
                "visibility": VISIBILITY,
                "owner_id": {**ID, "type": ["integer", "null"], "description": "null for a DM"},
                "created_at": TIME,
                "last_message_id": {
                    **COUNT,
                    "description": "The room's newest event id (0: none yet)",
                },
                "role": {**ROLE, "enum": [*ROLE["enum"], None], "description": _CALLERS},
                "last_read_id": {**COUNT, "type": ["integer", "null"], "description": _CALLERS},
                "unread": {
                    **COUNT,
                    "type": ["integer", "null"],
                    "description": "Messages after last_read_id. " + _CALLERS,
                },
                "mentions": {
                    **COUNT,
                    "type": ["integer", "null"],
                    "description": "Unread messages that mention the caller. " + _CALLERS,
                },
                "member_ids": {
                    "type": "array",
                    "items": ID,
                    "description": "DMs only: everyone in it",
                },
                "closed_at": {
                    **TIME,
                    "description": "When an administrator closed it (no new connections "
                    "or messages; history stays readable); absent while open",
                },
            },
        ),
        "NewRoom": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": _ROOM_NAME,
                "visibility": {**VISIBILITY, "default": "public"},
            },
        },
        "RoomChange": {
            "type": "object",
            "minProperties": 1,
            "properties": {"name": _ROOM_NAME, "visibility": VISIBILITY},
        },
        "RoomPage": obj(
            ["items", "next"],
            {
                "items": {"type": "array", "items": ref("Room")},
                "next": {
                    "type": ["string", "null"],
                    "description": "Pass as ?cursor= for the next page; null on the last page",
                },
            },
        ),
        "Member": obj(
            ["user_id", "handle", "role", "joined_at"],
            {"user_id": ID, "handle": HANDLE, "role": ROLE, "joined_at": TIME},
        ),
        "MemberList": obj(["items"], {"items": {"type": "array", "items": ref("Member")}}),
        "OnlineList": obj(
            ["items"],
            {"items": {"type": "array", "items": obj(["user_id"], {"user_id": ID})}},
        ),
        "RoleChange": {
            "type": "object",
            "required": ["role"],
            "properties": {"role": {"enum": ["admin", "member"]}},
        },
        "OwnerChange": _user_id_body("The new owner: a member of the room"),
        "NewInvite": _user_id_body("Whom to invite"),
        "Invitation": obj(
            ["room_id", "room_name", "user_id", "invited_by", "created_at"],
            {
                "room_id": ID,
                "room_name": {"type": "string", "minLength": 1, "maxLength": MAX_ROOM_NAME},
                "user_id": {**ID, "description": "Who is invited"},
                "invited_by": ID,
                "created_at": TIME,
            },
        ),
        "InvitationList": obj(["items"], {"items": {"type": "array", "items": ref("Invitation")}}),
        "NewDm": {
            "oneOf": [
                _user_id_body("A 1:1 DM with this user"),
                {
                    "type": "object",
                    "required": ["user_ids"],
                    "properties": {
                        "user_ids": {
                            "type": "array",
                            "items": ID_IN,
                            "minItems": 1,
                            "maxItems": group_dm_max,
                        }
                    },
                    "description": "A group DM of the caller and these users (repeats count once; "
                    f"CHATD_GROUP_DM_MAX: {group_dm_max})",
                },
            ]
        },
    }


def paths() -> dict[str, Any]:
    rooms = f"{API}/rooms"
    room = {"200": json_answer(ref("Room"), "The room")}
    member = f"{rooms}/{{room_id}}/members/{{user_id}}"
    invites = f"{rooms}/{{room_id}}/invites"
    cursor = param(
        "cursor",
        "query",
        "RoomPage.next of the page before",
        schema={"type": "integer", "minimum": 0, "maximum": MAX_DB_ID},
    )
    kind = param(
        "kind",
        "query",
        "Only rooms, or only DMs",
        schema={"enum": ["room", "dm"]},
        empty_is_absent=False,
    )
    joined = param(
        "joined",
        "query",
        "true: only the rooms the caller belongs to",
        schema={"type": "boolean"},
        empty_is_absent=False,
    )
    limit = param("limit", "query", "Page size (default 50)", maximum=200)
    return {
        rooms: {
            "get": op(
                "Rooms you can see: public ones and those you belong to, by id",
                {"200": json_answer(ref("RoomPage"), "A page of rooms")},
                401,
                422,
                params=[kind, joined, limit, cursor],
            ),
            "post": op(
                "Create a room (you own it and are its first member)",
                {"201": json_answer(ref("Room"), "Created")},
                400,
                401,
                422,
                body="NewRoom",
            ),
        },
        f"{rooms}/{{room_id}}": {
            "get": op("A room", room, 401, 403, 404, params=[ROOM_ID]),
            "patch": op(
                "Rename a room or change its visibility (owner only; not a DM)",
                {"200": json_answer(ref("Room"), "The changed room")},
                400,
                401,
                403,
                404,
                422,
                body="RoomChange",
                params=[ROOM_ID],
            ),
            "delete": op(
                "Delete a room and its history (owner only); live sockets close with 4404",
                NO_CONTENT,
                401,
                403,
                404,
                params=[ROOM_ID],
            ),
        },
        f"{rooms}/{{room_id}}/join": {
            "post": op(
                "Join a public room, or accept your invitation to an invite room",
                room,
                401,
                403,
                404,
                params=[ROOM_ID],
            )
        },
        f"{rooms}/{{room_id}}/leave": {
            "post": op(
                "Leave a room or a group DM (404 if you are not in it)",
                NO_CONTENT,
                401,
                404,
                409,
                params=[ROOM_ID],
                codes={
                    409: "owner_cannot_leave: transfer the room first; "
                    "cannot_leave_dm: a 1:1 DM cannot be left",
                },
            )
        },
        f"{rooms}/{{room_id}}/members": {
            "get": op(
                "Members of a room",
                {"200": json_answer(ref("MemberList"), "Members")},
                401,
                403,
                404,
                params=[ROOM_ID],
            )
        },
        f"{rooms}/{{room_id}}/presence": {
            "get": op(
                "Who is online in the room now, across every instance",
                {"200": json_answer(ref("OnlineList"), "Online users")},
                401,
                403,
                404,
                params=[ROOM_ID],
            )
        },
        member: {
            "put": op(
                "Add a member (owner or admin; not in a DM): how people get into a private room",
                NO_CONTENT,
                401,
                403,
                404,
                params=[ROOM_ID, USER_ID],
            ),
            "delete": op(
                "Remove a member (the owner, an admin removing a member, or oneself)",
                NO_CONTENT,
                401,
                403,
                404,
                409,
                params=[ROOM_ID, USER_ID],
                codes={
                    409: "owner_cannot_leave: transfer the room first; "
                    "cannot_leave_dm: a 1:1 DM cannot be left",
                },
            ),
        },
        f"{member}/role": {
            "put": op(
                "Make a member an admin, or an admin a member (owner only)",
                {"200": json_answer(ref("Member"), "The member")},
                400,
                401,
                403,
                404,
                422,
                body="RoleChange",
                params=[ROOM_ID, USER_ID],
            )
        },
        f"{rooms}/{{room_id}}/owner": {
            "post": op(
                "Hand the room to another member (owner only); the old owner becomes an admin",
                room,
                400,
                401,
                403,
                404,
                422,
                body="OwnerChange",
                params=[ROOM_ID],
            )
        },
        invites: {
            "post": op(
                "Invite someone to an invite room (any member)",
                {"201": json_answer(ref("Invitation"), "Invited")},
                400,
                401,
                403,
                404,
                409,
                422,
                body="NewInvite",
                params=[ROOM_ID],
                codes={
                    409: "already_member, already_invited",
                    422: "validation_error: not an invite room, or a bad user_id",
                },
            ),
            "get": op(
                "The room's pending invitations (members)",
                {"200": json_answer(ref("InvitationList"), "Pending invitations")},
                401,
                403,
                404,
                params=[ROOM_ID],
            ),
        },
        f"{invites}/{{user_id}}": {
            "delete": op(
                "Withdraw an invitation (whoever invited, an admin or the owner)",
                NO_CONTENT,
                401,
                403,
                404,
                params=[ROOM_ID, USER_ID],
            )
        },
        f"{API}/users/me/invites": {
            "get": op(
                "Your pending invitations",
                {"200": json_answer(ref("InvitationList"), "Invitations")},
                401,
            )
        },
        f"{API}/users/me/invites/{{room_id}}/accept": {
            "post": op(
                "Accept an invitation: you are a member now",
                room,
                401,
                404,
                params=[ROOM_ID],
            )
        },
        f"{API}/users/me/invites/{{room_id}}": {
            "delete": op("Decline an invitation", NO_CONTENT, 401, 404, params=[ROOM_ID])
        },
        f"{API}/dms": {
            "post": op(
                "The one DM between you and these people, made the first time",
                {
                    "201": json_answer(ref("Room"), "Created"),
                    "200": json_answer(ref("Room"), "It existed already"),
                },
                400,
                401,
                404,
                422,
                body="NewDm",
            )
        },
    }
