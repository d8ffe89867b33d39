"""/api/v1/search: messages holding every word of a query, newest first, with highlights.

Scoped to one room (the caller must be able to read it: 403/404 as for its history),
or to every room the caller may read. Pages follow a cursor: the last result's
(created_at, room_id, id), which no later message can take, so paging neither repeats
nor skips a message while new ones arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from quart import Blueprint, request

from chatd.auth.access import readable_room
from chatd.errors import ValidationFailed
from chatd.model import Message, RoomId, iso
from chatd.search.highlight import highlight
from chatd.search.query import parse_query
from chatd.service import Service
from chatd.transport.http import MAX_DB_ID, authenticate, query_int

DEFAULT_PAGE = 20
MAX_PAGE = 50
MAX_CURSOR_CHARS = 200


def search_routes(service: Service) -> Blueprint:
    bp = Blueprint("search", __name__)
    store = service.store

    @bp.get("/api/v1/search")
    async def search() -> dict[str, Any]:
        me = authenticate(service.settings.jwt_secret, request.headers, request.args)
        args = request.args
        terms = parse_query(args.get("q"))
        limit = query_int(args, "limit", default=DEFAULT_PAGE, low=1, high=MAX_PAGE)
        assert limit is not None
        raw_room_id = query_int(args, "room_id", default=None, low=1)
        cursor = args.get("cursor")
        before = decode_cursor(cursor) if cursor else None
        room_id = None if raw_room_id is None else RoomId(raw_room_id)
        if room_id is not None:
            await readable_room(store, room_id, me)  # 404 unknown, 403 members only
        found = await store.search_messages(me, terms, room_id, before, limit + 1)
        shown = found[:limit]
        return {
            "items": [
                {"message": message.to_json(), "highlight": highlight(message.text, terms)}
                for message in shown
            ],
            "next": encode_cursor(shown[-1]) if len(found) > limit else None,
        }

    return bp


def encode_cursor(message: Message) -> str:
    """Opaque to clients: the message's key, as JSON in URL-safe base64."""
    key = json.dumps([iso(message.created_at), message.room_id, message.id])
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int, int]:
    """The key encode_cursor made; ValidationFailed (422) for anything else."""
    invalid = ValidationFailed("cursor is not one this server gave out: use the next of a page")
    if len(cursor) > MAX_CURSOR_CHARS:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError):
        raise invalid from None
    match key:
        case [str() as created_at, int() as room_id, int() as message_id] if (
            0 < room_id <= MAX_DB_ID and 0 < message_id <= MAX_DB_ID
        ):
            return created_at, room_id, message_id
    raise invalid
