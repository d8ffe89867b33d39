"""Request parsing shared by the REST and WebSocket handlers."""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from quart import request

from chatd.auth.tokens import verify_access_token
from chatd.errors import InvalidJson, NotFound, Unauthorized, ValidationFailed
from chatd.logs import user_id_var
from chatd.model import RoomId, UserId

MAX_DB_ID = 2**63 - 1
# JSON that chatd reads (REST bodies, WebSocket frames) nests three levels at most. The
# parser recurses once per level: 100,000 ['s would fail deep in it with a RecursionError.
MAX_JSON_DEPTH = 16
_AS_PARENS = bytes.maketrans(b"[{]}", b"(())")
_NOT_STRUCTURE = bytes(range(256)).translate(None, b'[]{}"')
_INTEGER = re.compile(r"-?[0-9]+")
# A lone surrogate can only come from an escape like "\ud800" (the text itself is UTF-8).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class Lookup(Protocol):
    """Headers or query args: anything with a str -> str get()."""

    def get(self, key: str) -> str | None: ...


async def json_object() -> dict[str, Any]:
    """The request body, which must be a JSON object of valid Unicode text.

    Past MAX_CONTENT_LENGTH (app.py) reading it raises a 413, whether the client
    said Content-Length or sent it chunked.
    """
    raw = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise InvalidJson("the request body must be UTF-8") from None
    if too_deep(text):
        raise InvalidJson(f"the request body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise InvalidJson("the request body must be a JSON object")
    if _SURROGATE_ESCAPE.search(text) and not _encodable(body):
        raise InvalidJson("strings must be valid Unicode: a lone surrogate escape is not")
    return body


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether this JSON could nest arrays and objects more than `limit` deep.

    Run on every WebSocket frame before json.loads, so the common case is two
    C-speed counts. When there are more brackets than levels allowed, strings are
    cut out (brackets in a message's text do not count) and nested pairs are
    peeled from the inside, one level per pass; every step is a str or bytes
    method, no Python loop over characters. Invalid JSON may be judged too deep;
    JSON within the limit never is.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    # Escaped backslashes, then escaped quotes: what is left of " opens or closes a string.
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    structure = unescaped.encode("utf-8", "surrogatepass").translate(None, _NOT_STRUCTURE)
    outside_strings = b"".join(structure.split(b'"')[::2])  # an unclosed one runs to the end
    brackets = outside_strings.translate(_AS_PARENS)
    in_a_row = b"(" * (limit + 1)  # opens that many levels at once: deep nesting ends here
    peeled = 0
    while in_a_row not in brackets and peeled <= limit and b"()" in brackets:
        brackets = brackets.replace(b"()", b"")
        peeled += 1
    # Each pass lowers the depth by one at most; what is left unpaired counts in full.
    return in_a_row in brackets or peeled + brackets.count(b"(") > limit


def _encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


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
    # ASCII digits only: int() would also take " 7", "+7", "1_000" and Arabic-Indic digits.
    if not _INTEGER.fullmatch(raw):
        raise ValidationFailed(f"{name} must be an integer")
    # Longer is out of range of any id (and int() refuses 4,300 digits and more).
    value = int(raw) if len(raw) <= len(str(MAX_DB_ID)) else high + 1
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be between {low} and {high}")
    return value


def room_id_param(raw: int) -> RoomId:
    # Quart's int converter takes any size; the database does not.
    if raw > MAX_DB_ID:
        raise NotFound(f"room {raw} does not exist")
    return RoomId(raw)
