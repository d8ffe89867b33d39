"""The OpenAPI 3.1 description of the REST API, served at /api/v1/openapi.json.

Kept by hand beside the routes; tests check that both list the same
operations and that real responses match these schemas.
"""

from __future__ import annotations

from typing import Any

import chatd

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
    for status in errors:
        op["responses"][str(status)] = {"$ref": f"#/components/responses/E{status}"}
    if body:
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
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
    }


ROOM_ID = _param("room_id", "path", "Room id")
USER_ID = _param("user_id", "path", "User id")
LIMIT = _param("limit", "query", "Page size (default 50)", maximum=200)
NO_CONTENT = {"204": {"description": "Done"}}

_STRING = {"type": "string"}
_ID = {"type": "integer", "minimum": 1}
_TIME = {"type": "string", "format": "date-time"}

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
            "password": {"type": "string", "minLength": 8, "maxLength": 1024},
        },
    },
    "RefreshRequest": {
        "type": "object",
        "required": ["refresh_token"],
        "properties": {"refresh_token": _STRING},
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
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "visibility": {"enum": ["public", "private"], "default": "public"},
        },
    },
    "RoomChange": {
        "type": "object",
        "minProperties": 1,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
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
    400: "Malformed request: the body is not a JSON object",
    401: "Missing, expired or invalid credentials",
    403: "Not allowed for this user",
    404: "No such resource",
    409: "Conflicts with existing data",
    422: "A field or parameter is invalid",
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
            "/api/v1/users/me": {
                "get": _op("The current user", {"200": _json(_ref("User"), "You")}, 401)
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
                            **_param("cursor", "query", "From RoomPage.next"),
                            "schema": {"type": "string"},
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
                        _param("before", "query", "Only messages with a smaller id"),
                    ],
                )
            },
        },
        "components": {
            "schemas": SCHEMAS,
            "responses": {
                f"E{status}": _json(_ref("Error"), text) for status, text in _ERROR_TEXT.items()
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
