"""What every part of the document uses: operation and parameter builders, shared
field schemas, the error schema and the error answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatd.transport.http import MAX_DB_ID, MAX_JSON_DEPTH

JSON = "application/json"
API = "/api/v1"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_answer(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def op(
    summary: str,
    responses: dict[str, Any],
    *errors: int,
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
    secure: bool = True,
    codes: dict[int, str] | None = None,
) -> dict[str, Any]:
    """One operation. `errors` are the 4xx it can answer besides 429 (every /api/
    request is rate limited) and 413 (with a body); `codes` names the error codes
    a client should act on, per status, in place of the generic description."""
    operation: dict[str, Any] = {"summary": summary, "responses": dict(responses)}
    for status in (*errors, 429):
        operation["responses"][str(status)] = {"$ref": f"#/components/responses/E{status}"}
    for status, text in (codes or {}).items():
        assert status in errors, f"{summary}: {status} is not among its errors"
        operation["responses"][str(status)] = json_answer(ref("Error"), text)
    if body:
        operation["responses"]["413"] = {"$ref": "#/components/responses/E413"}
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": ref(body)}}}
    if params:
        operation["parameters"] = params
    if not secure:
        operation["security"] = []
    return operation


def param(
    name: str,
    where: str,
    description: str,
    minimum: int = 1,
    *,
    schema: dict[str, Any] | None = None,
    empty_is_absent: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """An integer parameter from `minimum` (and `extra`), or one of the given schema.

    In the query, `?name=` (empty) is taken as absent unless `empty_is_absent` is off."""
    if schema is None:
        schema = {"type": "integer", "minimum": minimum} | extra
    found = {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
    }
    if where == "query" and empty_is_absent:  # ?limit= (empty): the default applies
        found["allowEmptyValue"] = True
    return found


def required_query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": True,
        "description": description,
        "schema": schema,
    }


# Planes where Unicode assigns control, format and separator characters; the others hold
# ideographs (2, 3), nothing yet (4 to 13) and private use (15, 16).
_PLANES_WITH_FORMAT_CHARACTERS = (0, 1, 14)


def unshown_class(refused: Callable[[str], bool]) -> str:
    """The body of a regex character class of every character `refused` is true of,
    as ranges: how a pattern says what a server-side rule refuses, exactly for the
    running Python's Unicode data. (Astral characters stand as themselves: a
    `\\U` escape is Python's alone.)"""
    found: list[tuple[int, int]] = []
    for plane in _PLANES_WITH_FORMAT_CHARACTERS:
        for code in range(plane << 16, (plane + 1) << 16):
            if 0xD800 <= code <= 0xDFFF:
                continue  # surrogates are no text (and many regex engines refuse them)
            if refused(chr(code)):
                if found and found[-1][1] == code - 1:
                    found[-1] = (found[-1][0], code)
                else:
                    found.append((code, code))

    def char(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)

    return "".join(char(low) if low == high else f"{char(low)}-{char(high)}" for low, high in found)


def without(refused: Callable[[str], bool]) -> dict[str, Any]:
    """A schema for strings holding none of the characters `refused` is true of.

    `not` a search rather than an anchored pattern: `$` also matches before a
    trailing newline in Python's regexes, which generators take at its word.
    """
    return {"not": {"pattern": f"[{unshown_class(refused)}]"}}


ROOM_ID = param("room_id", "path", "Room id", maximum=MAX_DB_ID)
USER_ID = param("user_id", "path", "User id", maximum=MAX_DB_ID)
MESSAGE_ID = param("message_id", "path", "Message id (the room's sequence)", maximum=MAX_DB_ID)
NO_CONTENT = {"204": {"description": "Done"}}

STRING: dict[str, Any] = {"type": "string"}
ID: dict[str, Any] = {"type": "integer", "minimum": 1}
ID_IN: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": MAX_DB_ID}
COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
ROLE: dict[str, Any] = {"enum": ["owner", "admin", "member"]}
HANDLE: dict[str, Any] = {
    "type": "string",
    "description": "The local part of the user's email: ann for ann@example.com",
}


def obj(required: list[str], properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An object answer: exactly these properties, the required ones always there."""
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    } | extra


def item_list(items: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": items}
    if description:
        schema["description"] = description
    return obj(["items"], {"items": schema})


ERROR_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": STRING, "message": STRING},
            }
        },
    },
}

ERROR_TEXT = {
    400: (
        "Malformed body (code invalid_json): not a JSON object, not UTF-8, nested deeper "
        f"than {MAX_JSON_DEPTH} levels, or a string with a lone surrogate escape"
    ),
    401: "Missing, expired or invalid credentials",
    403: "Not allowed for this user",
    404: "No such resource",
    409: "Conflicts with existing data",
    413: "The body is larger than 64 KiB (code request_entity_too_large)",
    422: "A field or parameter is invalid (code validation_error)",
    423: "An administrator closed the room (code room_closed); its history stays readable",
    429: "Rate limited (code rate_limited): try again after Retry-After seconds",
}
# The limits' answers say when to try again (RFC 9110: whole seconds).
ERROR_HEADERS = {
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    }
}


def error_responses() -> dict[str, Any]:
    return {
        f"E{status}": json_answer(ref("Error"), text)
        | ({"headers": ERROR_HEADERS[status]} if status in ERROR_HEADERS else {})
        for status, text in ERROR_TEXT.items()
    }
