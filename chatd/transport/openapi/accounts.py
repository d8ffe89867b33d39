"""/auth and /users: accounts, tokens, sessions, and finding people by handle."""

from __future__ import annotations

import functools
import unicodedata
from typing import Any

from chatd.transport.openapi.common import (
    API,
    HANDLE,
    ID,
    NO_CONTENT,
    STRING,
    json_answer,
    obj,
    op,
    param,
    ref,
    required_query,
    without,
)
from chatd.transport.rest_people import MAX_HANDLE_QUERY, USERS_PAGE

# auth/accounts.validate_password: 8 to 1024 characters, no NUL.
PASSWORD = {"type": "string", "minLength": 8, "maxLength": 1024, "pattern": "^[^\\u0000]*$"}


def _handle_refuses(ch: str) -> bool:
    """What GET /users refuses in ?handle=: "@", and what str.isprintable() calls
    unprintable (control, format and separator characters but the space), bar the
    unassigned and private-use characters, which no short pattern can list."""
    kind = unicodedata.category(ch)
    return ch == "@" or (ch != " " and kind[0] in "CZ" and kind not in ("Cn", "Co"))


@functools.cache
def handle_prefix() -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_HANDLE_QUERY,
        "description": f"1 to {MAX_HANDLE_QUERY} printable characters, no @",
        **without(_handle_refuses),
    }


SCHEMAS: dict[str, Any] = {
    "Credentials": {
        "type": "object",
        "required": ["email", "password"],
        "properties": {
            "email": {"type": "string", "format": "email", "maxLength": 254},
            "password": PASSWORD,
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
        "properties": {"current_password": STRING, "new_password": PASSWORD},
    },
    "User": obj(["id", "email", "handle"], {"id": ID, "email": STRING, "handle": HANDLE}),
    "UserMatch": obj(["id", "handle"], {"id": ID, "handle": HANDLE}),
    "UserList": obj(
        ["items"],
        {
            "items": {
                "type": "array",
                "items": ref("UserMatch"),
                "maxItems": USERS_PAGE,
                "description": "By handle",
            }
        },
    ),
    "TokenPair": obj(
        ["access_token", "refresh_token", "token_type", "expires_in"],
        {
            "access_token": {"type": "string", "description": "HS256 JWT, short-lived"},
            "refresh_token": {"type": "string", "description": "Opaque, single-use"},
            "token_type": {"const": "bearer"},
            "expires_in": {"type": "integer", "description": "Access token lifetime, seconds"},
        },
    ),
}


def paths() -> dict[str, Any]:
    auth = f"{API}/auth"
    tokens = {"200": json_answer(ref("TokenPair"), "Tokens")}
    return {
        f"{auth}/register": {
            "post": op(
                "Create an account",
                {"201": json_answer(ref("User"), "Created")},
                400,
                409,
                422,
                body="Credentials",
                secure=False,
            )
        },
        f"{auth}/login": {
            "post": op(
                "Exchange email and password for tokens",
                tokens,
                400,
                401,
                422,
                body="Credentials",
                secure=False,
            )
        },
        f"{auth}/refresh": {
            "post": op(
                "Exchange a refresh token (once) for a new pair",
                tokens,
                400,
                401,
                422,
                body="RefreshRequest",
                secure=False,
            )
        },
        f"{auth}/logout": {
            "post": op(
                "End the login this refresh token belongs to (it and every token rotated "
                "from it); a token never issued, or already revoked, is also 204",
                NO_CONTENT,
                400,
                422,
                body="RefreshRequest",
                secure=False,
            )
        },
        f"{API}/users": {
            "get": op(
                f"Up to {USERS_PAGE} users whose handle starts with the prefix: "
                "whom to DM or invite",
                {"200": json_answer(ref("UserList"), "Matching users")},
                401,
                422,
                params=[
                    required_query("handle", "The start of a handle, any case", handle_prefix()),
                    param(
                        "limit",
                        "query",
                        f"Users at most (default {USERS_PAGE})",
                        maximum=USERS_PAGE,
                    ),
                ],
            )
        },
        f"{API}/users/me": {
            "get": op("The current user", {"200": json_answer(ref("User"), "You")}, 401)
        },
        f"{API}/users/me/password": {
            "post": op(
                "Change your password: every session ends (refresh tokens revoked, access "
                "tokens issued before refused) and you get a new pair. Wrong current "
                "passwords count as failed logins (403 wrong_password, then 429)",
                {"200": json_answer(ref("TokenPair"), "Tokens of a new session")},
                400,
                401,
                403,
                422,
                body="PasswordChange",
                codes={403: "wrong_password: the current password is not yours"},
            )
        },
    }
