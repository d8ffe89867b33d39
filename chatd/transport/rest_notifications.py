"""/api/v1/notifications: a user's mentions and missed DMs, with read state.

Served by processes of the notifications role. Each user sees and marks only their own:
ids of others' notifications are ignored, never an error that would tell them apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, request

from chatd.errors import ValidationFailed
from chatd.model import UserId
from chatd.service import Service
from chatd.transport.http import MAX_DB_ID, authenticate, json_object, query_int

DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_IDS = 500  # ids marked read in one request


def notification_routes(service: Service) -> Blueprint:
    bp = Blueprint("notifications", __name__)
    store = service.store

    def user() -> UserId:
        return authenticate(service.settings.jwt_secret, request.headers, request.args)

    @bp.get("/api/v1/notifications")
    async def notifications() -> dict[str, Any]:
        me = user()
        args = request.args
        unread = args.get("unread")
        if unread not in (None, "", "true", "false"):
            raise ValidationFailed('unread must be "true" or "false"')
        limit = query_int(args, "limit", default=DEFAULT_PAGE, low=1, high=MAX_PAGE)
        assert limit is not None
        before = query_int(args, "before", default=None, low=1)
        found = await store.notifications_for(
            me, unread_only=unread == "true", before=before, limit=limit + 1
        )
        shown = found[:limit]
        return {
            "items": [notification.to_json() for notification in shown],
            "next": shown[-1].id if len(found) > limit else None,
            "unread_count": await store.unread_notifications(me),
        }

    @bp.get("/api/v1/notifications/unread_count")
    async def unread_count() -> dict[str, Any]:
        return {"unread_count": await store.unread_notifications(user())}

    @bp.post("/api/v1/notifications/read")
    async def mark_read() -> dict[str, Any]:
        me = user()
        body = await json_object()
        ids, up_to = body.get("ids"), body.get("up_to")
        if ids is None and up_to is None:
            raise ValidationFailed('give "ids" (a list of notification ids) or "up_to" (an id)')
        if ids is not None and not (
            isinstance(ids, list) and len(ids) <= MAX_IDS and all(map(_is_id, ids))
        ):
            raise ValidationFailed(f"ids must be a list of at most {MAX_IDS} notification ids")
        if up_to is not None and not _is_id(up_to):
            raise ValidationFailed("up_to must be a notification id (a positive integer)")
        unread = await store.mark_notifications_read(
            me, ids=sorted(set(ids or ())), up_to=up_to, now=datetime.now(UTC)
        )
        return {"unread_count": unread}

    return bp


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_DB_ID
