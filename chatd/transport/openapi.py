"""The OpenAPI 3.1 description of the REST API, served at /api/v1/openapi.json.

Kept by hand beside the routes; tests check that both list the same
operations and that real responses match these schemas.
"""

from __future__ import annotations

from typing import Any

import chatd
from chatd.transport.http import MAX_DB_ID, MAX_JSON_DEPTH
from chatd.transport.rest_rooms import MAX_ROOM_NAME

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _op(
    summary: str,
    responses: dict[str, Any],
    *errors: int,
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
    secure: bool = True,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": dict(responses)}
    for status in (*errors, 429):  # every /api/ request is rate limited (ratelimit/)
        op["responses"][str(status)] = {"$ref": f"#/components/responses/E{status}"}
    if body:
        op["responses"]["413"] = {"$ref": "#/components/responses/E413"}
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": _ref(body)}}}
    if params:
        op["parameters"] = params
    if not secure:
        op["security"] = []
    return op


def _param(
    name: str, where: str, description: str, minimum: int = 1, **extra: Any
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum} | extra
    param = {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
    }
    if where == "query":  # ?limit= (empty) is taken as absent: the default applies
        param["allowEmptyValue"] = True
    return param


ROOM_ID = _param("room_id", "path", "Room id", maximum=MAX_DB_ID)
USER_ID = _param("user_id", "path", "User id", maximum=MAX_DB_ID)
LIMIT = _param("limit", "query", "Page size (default 50)", maximum=200)
NO_CONTENT = {"204": {"description": "Done"}}

_STRING = {"type": "string"}
_ID = {"type": "integer", "minimum": 1}
_TIME = {"type": "string", "format": "date-time"}
# auth/accounts.validate_password: 8 to 1024 characters, no NUL.
_PASSWORD = {"type": "string", "minLength": 8, "maxLength": 1024, "pattern": "^[^\\u0000]*$"}
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

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": _STRING, "message": _STRING},
            }
        },
    },
    "Credentials": {
        "type": "object",
        "required": ["email", "password"],
        "properties": {
            "email": {"type": "string", "format": "email", "maxLength": 254},
            "password": _PASSWORD,
        },
    },
    "RefreshRequest": {
        "type": "object",
        "required": ["refresh_token"],
        "properties": {"refresh_token": {"type": "string", "minLength": 1}},
    },
    "PasswordChange": {
        "type": "object",
        "required": ["current_password", "new_password"],
        "properties": {
            "current_password": _STRING,
            "new_password": _PASSWORD,
        },
    },
    "User": {
        "type": "object",
        "required": ["id", "email"],
        "properties": {"id": _ID, "email": _STRING},
        "additionalProperties": False,
    },
    "TokenPair": {
        "type": "object",
        "required": ["access_token", "refresh_token", "token_type", "expires_in"],
        "properties": {
            "access_token": {"type": "string", "description": "HS256 JWT, short-lived"},
            "refresh_token": {"type": "string", "description": "Opaque, single-use"},
            "token_type": {"const": "bearer"},
            "expires_in": {"type": "integer", "description": "Access token lifetime, seconds"},
        },
        "additionalProperties": False,
    },
    "Room": {
        "type": "object",
        "required": ["id", "name", "visibility", "owner_id", "created_at"],
        "properties": {
            "id": _ID,
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "visibility": {"enum": ["public", "private"]},
            "owner_id": _ID,
            "created_at": _TIME,
        },
        "additionalProperties": False,
    },
    "NewRoom": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": _ROOM_NAME,
            "visibility": {"enum": ["public", "private"], "default": "public"},
        },
    },
    "RoomChange": {
        "type": "object",
        "minProperties": 1,
        "properties": {
            "name": _ROOM_NAME,
            "visibility": {"enum": ["public", "private"]},
        },
    },
    "RoomPage": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": _ref("Room")},
            "next": {
                "type": ["string", "null"],
                "description": "Pass as ?cursor= for the next page; null on the last page",
            },
        },
    },
    "Message": {
        "type": "object",
        "required": ["id", "room_id", "user_id", "text", "created_at"],
        "properties": {
            "id": {**_ID, "description": "The room's sequence: 1, 2, 3, ... in send order"},
            "room_id": _ID,
            "user_id": _ID,
            "text": {"type": "string", "minLength": 1, "maxLength": 4000},
            "created_at": _TIME,
            "client_id": {"type": "string", "maxLength": 64},
        },
        "additionalProperties": False,
    },
    "MessagePage": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": _ref("Message"), "description": "Oldest first"},
            "next": {
                "type": ["integer", "null"],
                "description": "Pass as ?before= for older messages; null when none are left",
            },
        },
    },
    "MemberList": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["user_id"],
                    "properties": {"user_id": _ID},
                },
            }
        },
    },
}

_ERROR_TEXT = {
    400: (
        "Malformed body (code invalid_json): not a JSON object, not UTF-8, nested deeper "
        f"than {MAX_JSON_DEPTH} levels, or a string with a lone surrogate escape"
    ),
    401: "Missing, expired or invalid credentials",
    403: "Not allowed for this user",
    404: "No such resource",
    409: "Conflicts with existing data",
    413: "The body is larger than 64 KiB (code request_entity_too_large)",
    422: "A field or parameter is invalid",
    429: "Rate limited (code rate_limited): try again after Retry-After seconds",
}
# The limits' answers say when to try again (RFC 9110: whole seconds).
_ERROR_HEADERS = {
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    }
}


def document() -> dict[str, Any]:
    auth, rooms = "/api/v1/auth", "/api/v1/rooms"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "chatd",
            "version": chatd.__version__,
            "description": (
                "Real-time chat. REST for accounts, rooms and history; live messages over "
                "WebSocket at /ws/rooms/{room_id} (see the README for the frame protocol)."
            ),
        },
        "security": [{"bearer": []}],
        "paths": {
            f"{auth}/register": {
                "post": _op(
                    "Create an account",
                    {"201": _json(_ref("User"), "Created")},
                    400,
                    409,
                    422,
                    body="Credentials",
                    secure=False,
                )
            },
            f"{auth}/login": {
                "post": _op(
                    "Exchange email and password for tokens",
                    {"200": _json(_ref("TokenPair"), "Tokens")},
                    400,
                    401,
                    422,
                    body="Credentials",
                    secure=False,
                )
            },
            f"{auth}/refresh": {
                "post": _op(
                    "Exchange a refresh token (once) for a new pair",
                    {"200": _json(_ref("TokenPair"), "Tokens")},
                    400,
                    401,
                    422,
                    body="RefreshRequest",
                    secure=False,
                )
            },
            f"{auth}/logout": {
                "post": _op(
                    "End the login this refresh token belongs to (it and every token rotated "
                    "from it); a token never issued, or already revoked, is also 204",
                    NO_CONTENT,
                    400,
                    422,
                    body="RefreshRequest",
                    secure=False,
                )
            },
            "/api/v1/users/me": {
                "get": _op("The current user", {"200": _json(_ref("User"), "You")}, 401)
            },
            "/api/v1/users/me/password": {
                "post": _op(
                    "Change your password: every session ends (refresh tokens revoked, access "
                    "tokens issued before refused) and you get a new pair. Wrong current "
                    "passwords count as failed logins (403 wrong_password, then 429)",
                    {"200": _json(_ref("TokenPair"), "Tokens of a new session")},
                    400,
                    401,
                    403,
                    422,
                    body="PasswordChange",
                )
            },
            rooms: {
                "get": _op(
                    "Rooms you can see: public ones and private ones you belong to",
                    {"200": _json(_ref("RoomPage"), "A page of rooms, by id")},
                    401,
                    422,
                    params=[
                        LIMIT,
                        {
                            **_param("cursor", "query", "RoomPage.next of the page before"),
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_DB_ID},
                        },
                    ],
                ),
                "post": _op(
                    "Create a room (you own it and are its first member)",
                    {"201": _json(_ref("Room"), "Created")},
                    400,
                    401,
                    422,
                    body="NewRoom",
                ),
            },
            f"{rooms}/{{room_id}}": {
                "get": _op(
                    "A room",
                    {"200": _json(_ref("Room"), "The room")},
                    401,
                    403,
                    404,
                    params=[ROOM_ID],
                ),
                "patch": _op(
                    "Rename a room or change its visibility (owner only)",
                    {"200": _json(_ref("Room"), "The changed room")},
                    400,
                    401,
                    403,
                    404,
                    422,
                    body="RoomChange",
                    params=[ROOM_ID],
                ),
                "delete": _op(
                    "Delete a room and its history (owner only); live sockets close with 4404",
                    NO_CONTENT,
                    401,
                    403,
                    404,
                    params=[ROOM_ID],
                ),
            },
            f"{rooms}/{{room_id}}/members": {
                "get": _op(
                    "Members of a room",
                    {"200": _json(_ref("MemberList"), "Members")},
                    401,
                    403,
                    404,
                    params=[ROOM_ID],
                )
            },
            f"{rooms}/{{room_id}}/presence": {
                "get": _op(
                    "Who is online in the room now, across every instance",
                    {"200": _json(_ref("MemberList"), "Online users")},
                    401,
                    403,
                    404,
                    params=[ROOM_ID],
                )
            },
            f"{rooms}/{{room_id}}/members/{{user_id}}": {
                "put": _op(
                    "Add a member (owner only); needed to join a private room",
                    NO_CONTENT,
                    401,
                    403,
                    404,
                    params=[ROOM_ID, USER_ID],
                ),
                "delete": _op(
                    "Remove a member (the owner, or the member leaving)",
                    NO_CONTENT,
                    401,
                    403,
                    404,
                    422,
                    params=[ROOM_ID, USER_ID],
                ),
            },
            f"{rooms}/{{room_id}}/messages": {
                "get": _op(
                    "History, newest page first; each page oldest first",
                    {"200": _json(_ref("MessagePage"), "A page of messages")},
                    401,
                    403,
                    404,
                    422,
                    params=[
                        ROOM_ID,
                        LIMIT,
                        _param(
                            "before",
                            "query",
                            "Only messages with a smaller id",
                            maximum=MAX_DB_ID,
                        ),
                    ],
                )
            },
        },
        "components": {
            "schemas": SCHEMAS,
            "responses": {
                f"E{status}": _json(_ref("Error"), text)
                | ({"headers": _ERROR_HEADERS[status]} if status in _ERROR_HEADERS else {})
                for status, text in _ERROR_TEXT.items()
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
