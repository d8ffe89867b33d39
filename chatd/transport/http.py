"""Request parsing shared by the REST and WebSocket handlers."""

from __future__ import annotations

from typing import Any, Protocol

from quart import request

from chatd.auth.tokens import verify_access_token
from chatd.errors import InvalidJson, NotFound, Unauthorized, ValidationFailed
from chatd.logs import user_id_var
from chatd.model import RoomId, UserId

MAX_DB_ID = 2**63 - 1


class Lookup(Protocol):
    """Headers or query args: anything with a str -> str get()."""

    def get(self, key: str) -> str | None: ...


async def json_object() -> dict[str, Any]:
    """The request body, which must be a JSON object."""
    body = await request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise InvalidJson("the request body must be a JSON object")
    return body


def bearer_token(headers: Lookup, args: Lookup) -> str:
    header = headers.get("Authorization") or ""
    scheme, _, token = header.partition(" ")
    if header and scheme.lower() == "bearer" and token.strip():
        return token.strip()
    query_token = args.get("token")
    if query_token:  # browsers cannot set headers on a WebSocket handshake
        return query_token
    raise Unauthorized("an access token is required: Authorization: Bearer <token>")


def authenticate(secret: str, headers: Lookup, args: Lookup) -> UserId:
    user_id = verify_access_token(bearer_token(headers, args), secret)
    user_id_var.set(user_id)  # for the log lines of this request or connection
    return user_id


def query_int(
    args: Lookup, name: str, *, default: int | None, low: int, high: int = MAX_DB_ID
) -> int | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be between {low} and {high}")
    return value


def room_id_param(raw: int) -> RoomId:
    # Quart's int converter takes any size; the database does not.
    if raw > MAX_DB_ID:
        raise NotFound(f"room {raw} does not exist")
    return RoomId(raw)
