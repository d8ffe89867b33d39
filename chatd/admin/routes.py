"""/api/v1/admin: the admin API, for users whose is_admin flag is set.

The flag is read from the store on every request, not carried in the token,
so an administrator whose rights are revoked loses them at once. Every action
writes its audit row in the transaction of its change (store/admin.py), then
travels like any other change: room changes on the bus to every instance's
room task, a disconnect on the bus's user channel to every instance's hub.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from quart import Blueprint, request

from chatd.errors import Conflict, Forbidden, ValidationFailed
from chatd.model import AuditEntry, RoomChange, UserEvent, UserId
from chatd.service import Service
from chatd.transport.http import authenticate, json_object, query_int, room_id_param
from chatd.transport.rest_rooms import user_id_param

log = logging.getLogger(__name__)

DEFAULT_AUDIT_PAGE = 50
MAX_AUDIT_PAGE = 200
DISCONNECT_REASON = "disconnected by an administrator"


class CannotRevokeSelf(Conflict):
    """An administrator cannot take their own rights away (another one can)."""

    code = "cannot_revoke_self"


def admin_routes(service: Service) -> Blueprint:
    bp = Blueprint("admin", __name__)
    store, bus, metrics = service.store, service.bus, service.metrics
    reports = service.reports

    async def administrator() -> UserId:
        me = authenticate(service.settings.jwt_secret, request.headers, request.args)
        if not await store.is_admin(me):
            # Not audited (nothing happened), but an operator should see who tries.
            log.warning("admin: refused %s %s to user %s", request.method, request.path, me)
            raise Forbidden("only administrators may use the admin API")
        return me

    def audit(
        me: UserId, action: str, target_type: str, target_id: int, **detail: Any
    ) -> AuditEntry:
        metrics.admin_actions.labels(action).inc()
        return AuditEntry(
            actor_id=me,
            action=action,
            target_type=target_type,
            target_id=target_id,
            detail=detail,
            instance=service.instance_id,
            at=datetime.now(UTC),
        )

    async def all_reports() -> list[dict[str, Any]]:
        assert reports is not None, "the service makes reports"
        return await reports.all()

    # -- statistics and connections -------------------------------------------------

    @bp.get("/api/v1/admin/instances")
    async def instances() -> dict[str, Any]:
        await administrator()
        found = await all_reports()
        return {"items": [{k: v for k, v in r.items() if k != "live"} for r in found]}

    @bp.get("/api/v1/admin/connections")
    async def connections() -> dict[str, Any]:
        await administrator()
        room_id = query_int(request.args, "room_id", default=None, low=1)
        user_id = query_int(request.args, "user_id", default=None, low=1)
        by_instance: list[dict[str, Any]] = []
        by_room: dict[int, dict[str, Any]] = {}
        for report in await all_reports():
            listed = [
                {**live, "instance_id": report["instance_id"]}
                for live in report["live"]
                if (room_id is None or live["room_id"] == room_id)
                and (user_id is None or live["user_id"] == user_id)
            ]
            by_instance.append(
                {
                    "instance_id": report["instance_id"],
                    "as_of": report["as_of"],
                    "age_s": report["age_s"],
                    "connections": report["connections"],
                    "truncated": report["truncated"],
                    "items": listed,
                }
            )
            for live in listed:
                room = by_room.setdefault(
                    live["room_id"],
                    {
                        "room_id": live["room_id"],
                        "connections": 0,
                        "users": set(),
                        "instances": set(),
                    },
                )
                room["connections"] += 1
                room["users"].add(live["user_id"])
                room["instances"].add(report["instance_id"])
        rooms = [
            {**room, "users": sorted(room["users"]), "instances": sorted(room["instances"])}
            for _, room in sorted(by_room.items())
        ]
        return {"instances": by_instance, "rooms": rooms}

    # -- users ----------------------------------------------------------------------

    @bp.post("/api/v1/admin/users/<int:user_id>/disconnect")
    async def disconnect(user_id: int) -> dict[str, Any]:
        me = await administrator()
        target = user_id_param(user_id)
        body = await optional_body()
        revoke = body.get("revoke_sessions", False)
        if not isinstance(revoke, bool):
            raise ValidationFailed("revoke_sessions must be true or false")
        # Whole seconds (JWT issue times): the cut-off is the next one, so that a token
        # issued in this second, before now, is refused too.
        cut_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        entry = audit(me, "user.disconnect", "user", target, revoke_sessions=revoke)
        await store.admin_disconnect(target, revoke, cut_at, entry)
        # Every instance closes the user's sockets (4408) as it hears this; here at once,
        # before the cut-off below would close them as signed out (4401).
        bus.publish_user_nowait(UserEvent(target, "disconnect", DISCONNECT_REASON))
        if revoke:
            # Refused here from now on; the others learn it from the store within seconds.
            service.accounts.cutoffs.cut(target, cut_at)
        return {"user_id": target, "revoke_sessions": revoke}

    @bp.post("/api/v1/admin/users/<int:user_id>/admin")
    async def grant_or_revoke(user_id: int) -> dict[str, Any]:
        me = await administrator()
        target = user_id_param(user_id)
        body = await json_object()
        admin = body.get("admin")
        if not isinstance(admin, bool):
            raise ValidationFailed("admin must be true or false")
        if target == me and not admin:
            raise CannotRevokeSelf("administrators cannot revoke their own rights")
        action = "user.grant_admin" if admin else "user.revoke_admin"
        changed = await store.set_admin(target, admin, audit(me, action, "user", target))
        return {"user_id": target, "admin": admin, "changed": changed}

    # -- rooms ----------------------------------------------------------------------

    @bp.post("/api/v1/admin/rooms/<int:room_id>/close")
    async def close(room_id: int) -> dict[str, Any]:
        me, rid = await administrator(), room_id_param(room_id)
        now = datetime.now(UTC)
        room = await store.close_room(rid, now, audit(me, "room.close", "room", rid))
        bus.publish_nowait(RoomChange(rid, "closed"))  # every instance closes its sockets
        return room.to_json()

    @bp.post("/api/v1/admin/rooms/<int:room_id>/reopen")
    async def reopen(room_id: int) -> dict[str, Any]:
        me, rid = await administrator(), room_id_param(room_id)
        now = datetime.now(UTC)
        room = await store.reopen_room(rid, now, audit(me, "room.reopen", "room", rid))
        bus.publish_nowait(RoomChange(rid, "reopened"))
        return room.to_json()

    @bp.post("/api/v1/admin/rooms/<int:room_id>/purge")
    async def purge(room_id: int) -> dict[str, Any]:
        me, rid = await administrator(), room_id_param(room_id)
        now = datetime.now(UTC)
        deleted, up_to = await store.purge_room(rid, now, audit(me, "room.purge", "room", rid))
        # Every instance tells its sockets (room_purged) and forgets its cached copies.
        bus.publish_nowait(RoomChange(rid, "purged", None, up_to))
        return {"room_id": rid, "deleted_messages": deleted, "up_to": up_to}

    # -- the audit log --------------------------------------------------------------

    @bp.get("/api/v1/admin/audit")
    async def audit_log() -> dict[str, Any]:
        await administrator()
        args = request.args
        limit = query_int(args, "limit", default=DEFAULT_AUDIT_PAGE, low=1, high=MAX_AUDIT_PAGE)
        before = query_int(args, "before", default=None, low=1)
        assert limit is not None
        found = await store.audit_log(before, limit + 1)
        shown = found[:limit]
        return {
            "items": [entry.to_json() for entry in shown],
            "next": shown[-1].id if len(found) > limit and shown else None,
        }

    return bp


async def optional_body() -> dict[str, Any]:
    """The JSON object sent, or {} for no body at all."""
    raw = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    return await json_object() if raw.strip() else {}
